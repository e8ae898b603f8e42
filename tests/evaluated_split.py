"""The finished tiny run's test split as the evaluate stage scored it: images, labels, saved final logits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ltsoups.config import load_config
from ltsoups.data.dataset import LabelledImages
from ltsoups.data.stats import ShotThresholds
from ltsoups.inference.classifier import LoadedClassifier
from ltsoups.predictions import Predictions
from ltsoups.registry import installed_registry
from ltsoups.stages.evaluate import FINAL_KEY, Results
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class EvaluatedSplit:
    split: LabelledImages
    saved: Predictions
    """the evaluate stage's logits of the final model on the split"""
    balanced: float
    """the evaluate stage's balanced accuracy of the final model"""
    train_counts: np.ndarray
    thresholds: ShotThresholds

    def inputs(self, loaded: LoadedClassifier) -> torch.Tensor:
        return torch.stack([loaded.preprocess(self.split.source.image(i)) for i in range(len(self.split))])

    def check(self, logits: torch.Tensor | np.ndarray) -> None:
        """``logits`` are the saved ones within 1e-4, with the same top class on every image."""
        logits = np.asarray(logits)
        assert logits.shape == self.saved.logits.shape
        assert np.abs(logits - self.saved.logits).max() <= 1e-4
        assert (logits.argmax(axis=1) == self.saved.logits.argmax(axis=1)).all()


def evaluated_test_split(run: Path) -> EvaluatedSplit:
    config = load_config(run / "params.yaml", [f"workdir={run / 'outputs'}"])
    workspace = Workspace(run / "outputs")
    splits = installed_registry().instantiate(config.data.dataset).load()
    balanced = Results.read(workspace).entry(FINAL_KEY).scores["balanced"]
    saved = Predictions.read(workspace.predictions(FINAL_KEY, "test"))
    return EvaluatedSplit(splits.test, saved, balanced, splits.train.class_counts(), config.data.thresholds)
