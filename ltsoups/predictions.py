"""A model's saved predictions on one split: its float32 logits and the labels they are scored against.

Stored like a checkpoint (safetensors ``logits`` (n, K) and ``labels`` (n,), with a JSON sidecar
saying which model, split and config produced them), so every number computed from them can be
recomputed later without the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ltsoups.checkpoint import Checkpoint, open_checkpoint, save_checkpoint
from ltsoups.config import LtSoupsConfig
from ltsoups.io.safetensors import CheckpointError
from ltsoups.provenance import hash_json

KIND = "predictions"
# What a checkpoint's logits do not depend on once its weights are given: how it was trained, where its
# members ran, which comparison asked, and where things are written. Every other section (data, backbone,
# head, runtime, and any section added later) is part of the prediction config, so a new evaluation
# setting can never be mistaken for an old one.
_NOT_PREDICTION_SECTIONS = frozenset(
    {"seed", "preset", "plan", "train", "merge", "retrain_head", "runner", "compare", "tracking", "workdir", "members"}
)


class Split(str, Enum):
    VAL = "val"
    TEST = "test"


def prediction_config_sha256(config: LtSoupsConfig) -> str:
    """Hash of what decides a checkpoint's logits on a split besides its weights."""
    dumped = config.model_dump(mode="json", by_alias=True)
    return hash_json({name: value for name, value in dumped.items() if name not in _NOT_PREDICTION_SECTIONS})


class Predictor(Protocol):
    """The logits (float32, (n, K)) of a checkpoint on every sample of a split, in split order."""

    def __call__(self, checkpoint: Checkpoint, split: Split) -> np.ndarray: ...


@dataclass(frozen=True)
class Predictions:
    logits: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.logits.ndim != 2 or self.labels.shape != (self.logits.shape[0],):
            raise ValueError(f"logits {self.logits.shape} and labels {self.labels.shape} do not pair up")

    @property
    def correct(self) -> np.ndarray:
        return self.logits.argmax(axis=1) == self.labels

    def write(self, path: Path, **provenance: Any) -> Checkpoint:
        """Save atomically, with ``provenance`` (model, split, weights hash, ...) in the sidecar."""
        tensors = {
            "logits": torch.from_numpy(np.ascontiguousarray(self.logits, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(self.labels, dtype=np.int64)),
        }
        samples, classes = self.logits.shape
        return save_checkpoint(path, tensors, kind=KIND, samples=samples, classes=classes, **provenance)

    @classmethod
    def read(cls, path: Path) -> Predictions:
        """The predictions at ``path``, checked against their sidecar and for a consistent layout."""
        tensors = open_checkpoint(path, expect_kind=KIND).load()
        if set(tensors) != {"logits", "labels"}:
            raise CheckpointError(f"{path}: expected tensors 'labels' and 'logits', found {sorted(tensors)}")
        logits, labels = tensors["logits"].numpy(), tensors["labels"].numpy()
        if logits.dtype != np.float32 or labels.dtype != np.int64:
            raise CheckpointError(f"{path}: expected float32 logits and int64 labels")
        try:
            predictions = cls(logits, labels)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
        if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1]):
            raise CheckpointError(f"{path}: labels outside 0..{logits.shape[1] - 1}")
        return predictions
