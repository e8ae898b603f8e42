"""A soup written straight from its weights, for tests that check the merge engine against sums by hand."""

from __future__ import annotations

from pathlib import Path

from ltsoups.checkpoint import Checkpoint, CheckpointWriter
from ltsoups.contracts import Weights
from ltsoups.merging import MergeInputs


def merge_weighted(weighted: Weights, out: Path, **provenance: object) -> Checkpoint:
    """Write sum_i w_i * checkpoint_i to ``out`` (a soup checkpoint), streaming; see `MergeInputs.weighted_sums`."""
    with MergeInputs.open([path for path, _ in weighted]) as inputs:
        inputs_record = [{"path": str(path), "weight": weight} for path, weight in weighted]
        with CheckpointWriter(out, inputs.layout, "soup", inputs=inputs_record, **provenance) as writer:
            inputs.weighted_sums([weighted], [writer])
    return writer.checkpoint
