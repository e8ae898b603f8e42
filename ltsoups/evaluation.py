"""Accuracy overall, balanced, per class and per shot group (many / medium / few)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ltsoups.data.dataset import LabelledImages
from ltsoups.data.stats import ClassStats, ShotGroup, ShotThresholds
from ltsoups.runtime import Runtime
from ltsoups.training.batches import ImageSamples
from ltsoups.training.transforms import Preprocess

BATCH_SIZE = 256


@dataclass(frozen=True)
class Scores:
    overall: float
    balanced: float
    many: float | None
    medium: float | None
    few: float | None
    per_class: list[float]

    def headline(self) -> dict[str, float]:
        """The five numbers people compare (group accuracies absent for empty groups)."""
        values = {"overall": self.overall, "balanced": self.balanced}
        for group in ShotGroup:
            value = getattr(self, group.value)
            if value is not None:
                values[group.value] = value
        return values

    def as_dict(self) -> dict[str, Any]:
        return {**self.headline(), "per_class": self.per_class}


def score_predictions(
    predictions: np.ndarray, labels: np.ndarray, train_counts: np.ndarray, thresholds: ShotThresholds
) -> Scores:
    """Percent accuracies; groups come from the full training counts of each class."""
    num_classes = len(train_counts)
    correct = predictions == labels
    totals = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, weights=correct, minlength=num_classes)
    present = totals > 0
    per_class = np.where(present, 100.0 * hits / np.maximum(totals, 1), np.nan)
    groups = np.array([g.value for g in ClassStats(np.asarray(train_counts), thresholds).groups()])

    def group_mean(group: ShotGroup) -> float | None:
        mask = (groups == group.value) & present
        return float(per_class[mask].mean()) if mask.any() else None

    return Scores(
        overall=float(100.0 * correct.mean()),
        balanced=float(np.nanmean(per_class)),
        many=group_mean(ShotGroup.MANY),
        medium=group_mean(ShotGroup.MEDIUM),
        few=group_mean(ShotGroup.FEW),
        per_class=[round(float(v), 4) for v in per_class],
    )


def predict(model: nn.Module, split: LabelledImages, preprocess: Preprocess, runtime: Runtime) -> np.ndarray:
    """The raw logits (no post-hoc adjustment) of every sample of ``split``, in order, as float32.

    Each image is predicted on the views ``preprocess.evaluation`` asks for; with several (test-time
    ensembling) the logits of the views are averaged, as LIFT and the authors' code do.
    """
    model.eval()
    loader = runtime.loader(ImageSamples(split, preprocess.views), batch_size=BATCH_SIZE, shuffle=False)
    with runtime.inference():
        outputs = [mean_over_views(model, images, runtime) for images, _ in loader]
    return torch.cat(outputs).numpy()


def mean_over_views(model: nn.Module, views: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """(batch, views, ...) inputs -> (batch, outputs): the model on every view, averaged over the views, float32.

    The views go to the run's device at most BATCH_SIZE at a time, and the model sees them so.
    """
    batch, count = views.shape[:2]
    flat = views.flatten(0, 1)
    if count == 1:
        return model(runtime.place(flat)).float().cpu()
    outputs = torch.cat([model(runtime.place(chunk)).float() for chunk in flat.split(BATCH_SIZE)])
    return outputs.view(batch, count, -1).mean(dim=1).cpu()


def evaluate(
    model: nn.Module,
    split: LabelledImages,
    preprocess: Preprocess,
    runtime: Runtime,
    train_counts: np.ndarray,
    thresholds: ShotThresholds,
) -> Scores:
    logits = predict(model, split, preprocess, runtime)
    return score_predictions(logits.argmax(axis=-1), split.labels, train_counts, thresholds)
