"""Streaming weighted merges of checkpoints: one model in memory however many are merged."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from ltsoups.checkpoint import Checkpoint, save_checkpoint
from ltsoups.io.safetensors import CheckpointError, TensorFileReader, TensorLayout


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
        readers = [stack.enter_context(TensorFileReader(path)) for path in paths]
        # Buffers sized for the largest tensor are reused for every tensor, so the allocator never
        # fragments: the only allocations that stay are the merged tensors themselves.
        scratch = torch.empty(max((readers[0].nbytes(n) for n in layout.entries), default=0), dtype=torch.uint8)
        most = max((math.prod(shape) for shape, _ in layout.entries.values()), default=0)
        accumulator, widened = torch.empty(most, dtype=torch.float64), torch.empty(most, dtype=torch.float64)
        for name in sorted(layout.entries):
            first = readers[0].read(name, scratch)
            if not first.is_floating_point():
                merged[name] = first.clone()
                continue
            total = accumulator[: first.numel()].view(first.shape).zero_()
            member = widened[: first.numel()].view(first.shape)
            dtype = first.dtype
            for reader, (_, weight) in zip(readers, weighted, strict=True):
                total.add_(member.copy_(reader.read(name, scratch)), alpha=weight)
            merged[name] = total.to(dtype)
    inputs = [{"path": str(path), "weight": weight} for path, weight in weighted]
    return save_checkpoint(out, merged, kind="soup", inputs=inputs, **provenance)
