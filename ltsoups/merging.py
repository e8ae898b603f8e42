"""Streaming weighted merges of checkpoints: one model in memory however many are merged."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ltsoups.checkpoint import Checkpoint, CheckpointError, TensorLayout, save_checkpoint


def check_layouts(paths: Sequence[Path]) -> TensorLayout:
    """The common tensor layout of ``paths``; raise naming the first file and tensor that differ."""
    reference = TensorLayout.of(paths[0])
    for path in paths[1:]:
        mismatch = reference.first_mismatch(TensorLayout.of(path))
        if mismatch is not None:
            raise CheckpointError(f"cannot merge {path} with {paths[0]}: {mismatch}")
    return reference


def merge_weighted(weighted: Sequence[tuple[Path, float]], out: Path, **provenance: Any) -> Checkpoint:
    """Write sum_i w_i * checkpoint_i to ``out``, reading one tensor of each input at a time.

    Floating tensors are accumulated in float64 and stored in their own dtype; other tensors
    (integer buffers) are taken from the first input.
    """
    if not weighted:
        raise ValueError("nothing to merge")
    paths = [path for path, _ in weighted]
    layout = check_layouts(paths)
    merged: dict[str, torch.Tensor] = {}
    with ExitStack() as stack:
        handles = [stack.enter_context(safe_open(str(path), framework="pt")) for path in paths]
        for name in sorted(layout.entries):
            first = handles[0].get_tensor(name)
            if not first.is_floating_point():
                merged[name] = first
                continue
            total = torch.zeros(first.shape, dtype=torch.float64)
            for handle, (_, weight) in zip(handles, weighted, strict=True):
                total.add_(handle.get_tensor(name).to(torch.float64), alpha=weight)
            merged[name] = total.to(first.dtype)
    inputs = [{"path": str(path), "weight": weight} for path, weight in weighted]
    return save_checkpoint(out, merged, kind="soup", inputs=inputs, **provenance)
