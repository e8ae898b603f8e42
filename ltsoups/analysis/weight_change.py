"""How far fine-tuning moved the image encoder from theta_0 (the paper's Figure 4): ||theta - theta_0||.

The norm runs over every floating tensor of the encoder (``encoder.*`` in a classifier checkpoint),
adapters included. A LoRA update is folded into the weight it adapts first, so a LoRA model is measured
by the change of its effective weights W + (A B)^T / r, as a full fine-tune would be. Checkpoints are
read one weight (with its LoRA factors) at a time: memory stays about one tensor group, not one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ltsoups.io.safetensors import CheckpointError, TensorFileReader, TensorLayout
from ltsoups.peft.adapters import fold_inputs, fold_lora

ENCODER_PREFIX = "encoder."
_FLOATING = ("F64", "F32", "F16", "BF16")


@dataclass(frozen=True)
class WeightChange:
    """||theta - theta_0|| of the image encoder, and relative to ||theta_0|| (over the same tensors)."""

    absolute: float
    relative: float

    def as_dict(self) -> dict[str, float]:
        return {"weight_change": self.absolute, "weight_change_relative": self.relative}


def _encoder_weights(path: Path) -> dict[str, tuple[str, ...]]:
    """Each effective (folded) floating weight of the encoder, and the stored tensors it is computed from."""
    entries = TensorLayout.of(path).entries
    return fold_inputs(
        name for name, (_, dtype) in entries.items() if name.startswith(ENCODER_PREFIX) and dtype in _FLOATING
    )


def weight_change(checkpoint: Path, theta0: Path) -> WeightChange:
    """The encoder's distance from theta_0, accumulated in float64 one weight at a time.

    Either checkpoint may hold LoRA factors or folded weights (a soup of LoRA members is folded while
    theta_0 is not): the effective weights are compared.
    """
    tuned_weights, start_weights = _encoder_weights(checkpoint), _encoder_weights(theta0)
    if not tuned_weights:
        raise CheckpointError(f"{checkpoint} has no floating {ENCODER_PREFIX}* tensor")
    if set(tuned_weights) != set(start_weights):
        name = sorted(set(tuned_weights) ^ set(start_weights))[0]
        where = "theta_0" if name in start_weights else "the checkpoint"
        raise CheckpointError(f"cannot compare {checkpoint} with theta_0 {theta0}: only {where} has weight {name!r}")
    moved = base = 0.0
    with TensorFileReader(checkpoint) as tuned, TensorFileReader(theta0) as start:
        for name, sources in tuned_weights.items():
            after = fold_lora({source: tuned.read(source).double() for source in sources})[name]
            before = fold_lora({source: start.read(source).double() for source in start_weights[name]})[name]
            if after.shape != before.shape:
                raise CheckpointError(
                    f"cannot compare {checkpoint} with theta_0 {theta0}: weight {name!r} has shape "
                    f"{list(after.shape)}, theta_0's {list(before.shape)}"
                )
            moved += float(torch.sum((after - before) ** 2))
            base += float(torch.sum(before**2))
    return WeightChange(math.sqrt(moved), math.sqrt(moved) / math.sqrt(base) if base else math.nan)
