"""Parameter-efficient fine-tuning of a transformer encoder, as in LIFT: LoRA or AdaptFormer.

Both freeze the pretrained weights and add small trainable modules that start as the identity, so
the encoder with its adapters computes exactly what the pretrained encoder did (theta_0 is unchanged).
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import nn
from torch.nn.utils import parametrize

# Matrices of a CLIP residual block that LoRA adapts: attention in/out projections and the MLP.
_LORA_TARGETS = ("attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Adapter initialisation is part of theta_0, so it is seeded: the same config gives the same weights.
_INIT_SEED = 0x10A


class PeftMethod(str, Enum):
    NONE = "none"
    LORA = "lora"
    ADAPTFORMER = "adaptformer"


class LowRankDelta(nn.Module):
    """W -> W + (alpha / rank) * B @ A, with B = 0 at the start."""

    def __init__(self, out_features: int, in_features: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.lora_a = nn.Parameter(torch.empty(rank, in_features).uniform_(-bound, bound, generator=generator))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        self.scale = 1.0 / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.lora_b @ self.lora_a).to(weight.dtype)


class ParallelAdapter(nn.Module):
    """AdaptFormer's bottleneck beside the MLP: up(relu(down(x))) * scale, up = 0 at the start."""

    def __init__(self, width: int, bottleneck: int, scale: float, generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        bound = 1.0 / math.sqrt(width)
        with torch.no_grad():
            self.down.weight.uniform_(-bound, bound, generator=generator)
            self.down.bias.zero_()
            self.up.weight.zero_()
            self.up.bias.zero_()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.down(x))) * self.scale


class AdaptedMlp(nn.Module):
    """A block's MLP with a parallel adapter on the same input."""

    def __init__(self, mlp: nn.Module, adapter: ParallelAdapter) -> None:
        super().__init__()
        self.mlp, self.adapter = mlp, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.adapter(x)


def _blocks(encoder: nn.Module) -> list[nn.Module]:
    blocks = [m for m in encoder.modules() if hasattr(m, "attn") and hasattr(m, "mlp")]
    if not blocks:
        raise ValueError("PEFT needs a transformer encoder with attention/MLP residual blocks (attn, mlp)")
    return blocks


def add_lora(encoder: nn.Module, rank: int) -> None:
    """Freeze ``encoder`` and parametrise each block's attention and MLP matrices as W + B A."""
    encoder.requires_grad_(False)
    generator = torch.Generator().manual_seed(_INIT_SEED)
    for block in _blocks(encoder):
        for target in _LORA_TARGETS:
            owner_path, name = target.rsplit(".", 1)
            owner = block.get_submodule(owner_path)
            weight = getattr(owner, name)
            delta = LowRankDelta(weight.shape[0], weight.shape[1], rank, generator)
            parametrize.register_parametrization(owner, name, delta)


def add_adaptformer(encoder: nn.Module, bottleneck: int, scale: float = 0.1) -> None:
    """Freeze ``encoder`` and add a parallel bottleneck adapter to each block's MLP."""
    encoder.requires_grad_(False)
    generator = torch.Generator().manual_seed(_INIT_SEED)
    for block in _blocks(encoder):
        adapter = ParallelAdapter(block.mlp.c_fc.in_features, bottleneck, scale, generator)
        block.mlp = AdaptedMlp(block.mlp, adapter)


_METHODS = {PeftMethod.LORA: add_lora, PeftMethod.ADAPTFORMER: add_adaptformer}


def apply_peft(encoder: nn.Module, method: PeftMethod, rank: int) -> None:
    """Turn a fully fine-tunable encoder into a parameter-efficient one (no-op for ``none``).

    ``rank`` is LoRA's rank or AdaptFormer's bottleneck width.
    """
    if method is not PeftMethod.NONE:
        _METHODS[method](encoder, rank)
