"""A comparison's content-addressed store: theta_0, members and logits, each made once and shared.

An entry's key hashes exactly what produced it (the hashes the stages' stale-input checks compare),
so methods and seeds that would make the same artifact share one. A workdir receives an entry as hard
links (copies where links are impossible) of the weights and their sidecar, unchanged, so its stages
accept it as if they had written it. Stages write atomically (a new file, then a rename): writing in a
workdir never changes a store entry.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ltsoups.checkpoint import Checkpoint, sidecar_path
from ltsoups.config import LtSoupsConfig
from ltsoups.io.atomic import atomic_path
from ltsoups.predictions import Predictions, Predictor, Split, prediction_config_sha256
from ltsoups.provenance import hash_json
from ltsoups.stages.sections import THETA0_SECTIONS
from ltsoups.workspace import StoreWorkspace


def theta0_key(config: LtSoupsConfig) -> str:
    return config.section_hash(*THETA0_SECTIONS)


def holds(weights: Path) -> bool:
    return weights.is_file() and sidecar_path(weights).is_file()


def link(source: Path, target: Path) -> None:
    """Give ``target`` the weights and sidecar of ``source`` (hard links, else copies), atomically."""
    for src, dst in ((source, target), (sidecar_path(source), sidecar_path(target))):
        if dst.exists() and os.path.samefile(src, dst):
            continue
        with atomic_path(dst) as tmp:
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)


class CachedPredictor:
    """Logits from the store when a checkpoint with these weights was already predicted under this prediction
    config; else computed by ``inner`` and stored."""

    def __init__(self, store: StoreWorkspace, config: LtSoupsConfig, labels: dict[Split, np.ndarray], inner: Predictor):
        self.store, self.labels, self.inner = store, labels, inner
        self.config_sha256 = prediction_config_sha256(config)
        self.computed = self.reused = 0

    def __call__(self, checkpoint: Checkpoint, split: Split) -> np.ndarray:
        weights = checkpoint.sidecar.weights_sha256
        path = self.store.predictions(
            hash_json({"weights": weights, "split": split.value, "config": self.config_sha256})
        )
        if holds(path):
            self.reused += 1
            return Predictions.read(path).logits
        logits = self.inner(checkpoint, split)
        Predictions(logits, self.labels[split]).write(
            path, split=split.value, model_weights_sha256=weights, prediction_config_sha256=self.config_sha256
        )
        self.computed += 1
        return logits
