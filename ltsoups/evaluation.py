"""Accuracy overall, balanced, per class and per shot group (many / medium / few)."""

from __future__ import annotations

from collections.abc import Iterator
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
KEPT_BYTES = 1 << 30
"""what a process keeps of a split's evaluation inputs (and, apart, of logits) for the next model it scores"""


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


class EvaluationInputs:
    """A split's images as `predict` gives them to a model: the evaluation views, in batches of BATCH_SIZE.

    Every model a stage scores sees the same inputs, so the first pass keeps them for the next when they fit
    in ``keep_bytes`` (the embedded world's 5120 test images: 63 MB); a larger split (CIFAR-100-LT's at
    224 px: about 6 GB) is preprocessed again for each model, so that host memory stays bounded.
    """

    def __init__(
        self, split: LabelledImages, preprocess: Preprocess, runtime: Runtime, keep_bytes: int = KEPT_BYTES
    ) -> None:
        self.split, self.preprocess, self.runtime, self.keep_bytes = split, preprocess, runtime, keep_bytes
        self._kept: list[torch.Tensor] | None = None

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels

    def __iter__(self) -> Iterator[torch.Tensor]:
        """(batch, views, C, H, W) tensors, every image of the split in order."""
        if self._kept is not None:
            yield from self._kept
            return
        samples = ImageSamples(self.split, self.preprocess.views)
        kept: list[torch.Tensor] | None = []
        size = 0
        for images, _ in self.runtime.loader(samples, batch_size=BATCH_SIZE, shuffle=False):
            size += images.nbytes
            if size > self.keep_bytes:
                kept = None
            if kept is not None:
                kept.append(images)
            yield images
        self._kept = kept


def predict(model: nn.Module, inputs: EvaluationInputs) -> np.ndarray:
    """The raw logits (no post-hoc adjustment) of every sample of ``inputs``, in order, as float32.

    Each image is predicted on the views ``preprocess.evaluation`` asks for; with several (test-time
    ensembling) the logits of the views are averaged, as LIFT and the authors' code do.
    """
    model.eval()
    runtime = inputs.runtime
    with runtime.inference():
        outputs = [mean_over_views(model, images, runtime) for images in inputs]
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
    model: nn.Module, inputs: EvaluationInputs, train_counts: np.ndarray, thresholds: ShotThresholds
) -> Scores:
    logits = predict(model, inputs)
    return score_predictions(logits.argmax(axis=-1), inputs.labels, train_counts, thresholds)
