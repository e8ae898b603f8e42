"""Parameter-efficient fine-tuning of a CLIP ViT as LIFT defines it: which methods there are, and their width.

The adapters themselves (torch modules) and the LoRA fold are in ``ltsoups.peft.adapters``.

Every method freezes the pretrained encoder and adds small trainable modules that start as the
identity, so the adapted encoder computes exactly what the pretrained one did (theta_0 is unchanged).
LIFT's definitions (its released code, see shared/reference/lift-code-facts.md):

- ``lora``: the query and value projections of each block's attention get ``(x @ A @ B) / r`` added,
  A of shape (in, r) Kaiming-uniform (a = sqrt(5)), B of shape (r, out) zero; keys, the attention's
  out-projection and the MLP are untouched.
- ``lora-mlp``: ``lora`` with LIFT's ``lora_mlp`` option, which also adapts the two MLP matrices;
  the LT-Soups authors' LoRA ablation folds exactly these (q, v, c_fc, c_proj) before merging.
- ``adaptformer``: beside each block's MLP, ``scale * up(relu(down(LayerNorm(x))))`` reading the
  residual stream x *before* ``ln_2``, with its own LayerNorm, down Kaiming-normal (a = sqrt(5)) with
  zero bias, up zero, and a learnable scalar scale starting at 1.

``lora-all`` is ours: the same LoRA update on every attention and MLP matrix (the whole fused q/k/v
in-projection, the out-projection, both MLP matrices)."""

from __future__ import annotations

import math
from enum import Enum


class PeftMethod(str, Enum):
    NONE = "none"
    LORA = "lora"
    """LIFT's LoRA: query and value projections only."""
    LORA_MLP = "lora-mlp"
    """LIFT's LoRA with its ``lora_mlp`` option: q, v and both MLP matrices (the paper's LT-Soups + LoRA)."""
    LORA_ALL = "lora-all"
    """Ours: LoRA on every attention and MLP matrix."""
    ADAPTFORMER = "adaptformer"
    """LIFT's AdaptFormer (LIFT's default PEFT method for CLIP ViT-B/16)."""


def lift_width(num_classes: int, num_layers: int) -> int:
    """LIFT's default rank / bottleneck width: 2^max(0, int(log2(K / (2 * layers)))); 4 for CIFAR-100 on ViT-B/16."""
    return 2 ** max(0, int(math.log2(num_classes / (2 * num_layers))))
