"""How far fine-tuning moved the image encoder from theta_0 (the paper's Figure 4): ||theta - theta_0||.

The norm runs over every floating tensor of the encoder (``encoder.*`` in a classifier checkpoint),
adapters included. A LoRA update is folded into the weight it adapts first, so a LoRA model is measured
by the change of its effective weights W + (A B)^T / r, as a full fine-tune would be. Checkpoints are
read one weight (with its LoRA factors) at a time: memory stays about one tensor group, not one model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from ltsoups.io.safetensors import CheckpointError, TensorFileReader, TensorLayout
from ltsoups.peft.adapters import fold_lora

ENCODER_PREFIX = "encoder."
# torch.nn.utils.parametrize stores a parametrised weight as <owner>.parametrizations.<name>.<part>.
_PARAMETRISED = ".parametrizations."


@dataclass(frozen=True)
class WeightChange:
    """||theta - theta_0|| of the image encoder, and relative to ||theta_0|| (over the same tensors)."""

    absolute: float
    relative: float

    def as_dict(self) -> dict[str, float]:
        return {"weight_change": self.absolute, "weight_change_relative": self.relative}


def _weight_of(name: str) -> str:
    """The weight a stored tensor belongs to: itself, or the parametrised weight its LoRA factor adapts."""
    owner, sep, rest = name.partition(_PARAMETRISED)
    return f"{owner}.{rest.split('.', 1)[0]}" if sep else name


def weight_change(checkpoint: Path, theta0: Path) -> WeightChange:
    """The encoder's distance from theta_0, accumulated in float64 one weight at a time."""
    layout, reference = TensorLayout.of(checkpoint), TensorLayout.of(theta0)
    mismatch = reference.first_mismatch(layout)
    if mismatch is not None:
        raise CheckpointError(f"cannot compare {checkpoint} with theta_0 {theta0}: {mismatch}")
    groups: dict[str, list[str]] = defaultdict(list)
    for name, (_, dtype) in layout.entries.items():
        if name.startswith(ENCODER_PREFIX) and dtype in ("F64", "F32", "F16", "BF16"):
            groups[_weight_of(name)].append(name)
    if not groups:
        raise CheckpointError(f"{checkpoint} has no floating {ENCODER_PREFIX}* tensor")
    moved = base = 0.0
    with TensorFileReader(checkpoint) as tuned, TensorFileReader(theta0) as start:
        for names in groups.values():
            after = fold_lora({name: tuned.read(name).double() for name in names})
            before = fold_lora({name: start.read(name).double() for name in names})
            for key, value in after.items():
                moved += float(torch.sum((value - before[key]) ** 2))
                base += float(torch.sum(before[key] ** 2))
    return WeightChange(math.sqrt(moved), math.sqrt(moved) / math.sqrt(base) if base else math.nan)
