"""Classify image files with a loaded classifier: batched on the run's device, unreadable files skipped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from ltsoups.evaluation import mean_over_views
from ltsoups.inference.classifier import LoadedClassifier
from ltsoups.runtime import Runtime

BATCH_SIZE = 256


@dataclass(frozen=True)
class ImagePrediction:
    path: Path
    classes: tuple[str, ...]
    """the top-k classes, most probable first"""
    probabilities: tuple[float, ...]


@dataclass(frozen=True)
class UnreadableImage:
    path: Path
    reason: str


@dataclass(frozen=True)
class PredictionRun:
    predictions: list[ImagePrediction]
    unreadable: list[UnreadableImage]


class ImageFileViews(Dataset):
    """Each file's evaluation views, its index, and why it could not be read ('' when it could)."""

    def __init__(self, paths: Sequence[Path], loaded: LoadedClassifier) -> None:
        self.paths, self.views = paths, loaded.views
        size = loaded.spec.preprocess.image_size
        self._blank = torch.zeros(loaded.spec.preprocess.evaluation.ensemble.views, 3, size, size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        try:
            with Image.open(self.paths[index]) as image:
                return self.views(image), index, ""
        except (OSError, ValueError, Image.DecompressionBombError) as err:  # PIL's errors for bad or odd files
            return self._blank, index, f"{type(err).__name__}: {err}"


def predict_files(
    loaded: LoadedClassifier,
    paths: Sequence[Path],
    runtime: Runtime,
    top_k: int,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> PredictionRun:
    """The ``top_k`` classes and their softmax probabilities for each readable file; the unreadable ones named.

    Logits are the model's on the evaluation's views of each image, averaged over views (as ``ltsoups
    evaluate`` computes them), at the runtime's precision; ``on_batch`` hears how many files each batch held.
    """
    if not 1 <= top_k <= len(loaded.class_names):
        raise ValueError(f"top-k {top_k}: must be between 1 and the model's {len(loaded.class_names)} classes")
    model = runtime.place(loaded.model).eval()
    loader = runtime.loader(ImageFileViews(paths, loaded), batch_size=batch_size, shuffle=False)
    names = loaded.class_names
    predictions: list[ImagePrediction] = []
    unreadable: list[UnreadableImage] = []
    with runtime.inference():
        for views, indices, errors in loader:
            readable = [i for i, error in enumerate(errors) if not error]
            unreadable += [UnreadableImage(paths[int(indices[i])], errors[i]) for i, e in enumerate(errors) if e]
            if readable:
                batch = views if len(readable) == len(errors) else views[readable]
                top = torch.softmax(mean_over_views(model, batch, runtime), dim=1).topk(top_k, dim=1)
                for i, classes, probabilities in zip(readable, top.indices.tolist(), top.values.tolist(), strict=True):
                    predictions.append(
                        ImagePrediction(paths[int(indices[i])], tuple(names[c] for c in classes), tuple(probabilities))
                    )
            if on_batch is not None:
                on_batch(len(errors))
    return PredictionRun(predictions, unreadable)
