"""Zero-shot classification with class-name prompts, scored by balanced accuracy per shot group."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ltsoups.data.stats import ShotThresholds
from ltsoups.embedded.inputs import pixels_to_tensor

PROMPT_TEMPLATE = "a photo of a {}."


class ZeroShotReport(BaseModel):
    """Mean per-class accuracy overall and within the many/medium/few groups of the training split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    balanced_accuracy: float = Field(description="Mean over classes of the per-class test accuracy.")
    many: float | None = Field(description="Balanced accuracy over many-shot classes (None if the group is empty).")
    medium: float | None = Field(description="Balanced accuracy over medium-shot classes (None if the group is empty).")
    few: float | None = Field(description="Balanced accuracy over few-shot classes (None if the group is empty).")


@torch.no_grad()
def zero_shot_predictions(
    model: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    pixels: np.ndarray,
    class_names: Sequence[str],
    batch_size: int = 512,
) -> np.ndarray:
    """The class whose prompt "a photo of a {class}." is nearest to each image."""
    text = model.encode_text(tokenizer([PROMPT_TEMPLATE.format(name) for name in class_names]), normalize=True)
    chunks = [
        (model.encode_image(pixels_to_tensor(pixels[start : start + batch_size]), normalize=True) @ text.T).argmax(1)
        for start in range(0, len(pixels), batch_size)
    ]
    return torch.cat(chunks).numpy()


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each class on its own samples (NaN for a class without samples)."""
    correct = np.bincount(labels, weights=(labels == predictions).astype(np.float64), minlength=num_classes)
    total = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correct / total


def zero_shot_report(accuracy: np.ndarray, train_counts: np.ndarray) -> ZeroShotReport:
    """Balanced accuracies from per-class accuracies, grouped by the training split's class counts."""
    thresholds = ShotThresholds()
    many = train_counts > thresholds.many
    few = train_counts < thresholds.few

    def mean_over(members: np.ndarray) -> float | None:
        return float(np.nanmean(accuracy[members])) if members.any() else None

    return ZeroShotReport(
        balanced_accuracy=float(np.nanmean(accuracy)),
        many=mean_over(many),
        medium=mean_over(~many & ~few),
        few=mean_over(few),
    )
