"""Labelled image collections: the one data type every sampler, trainer and evaluator sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image


class ImageSource(Protocol):
    """Random access to the images of a split, in dataset order."""

    def __len__(self) -> int: ...

    def image(self, index: int) -> Image.Image: ...


@runtime_checkable
class GeneratedImages(Protocol):
    """Images computed, not read from files: a process may keep them for the next under the hash of ``recipe``."""

    def __len__(self) -> int: ...

    def recipe(self) -> dict[str, Any]:
        """Everything that decides the images (JSON values): equal recipes give equal pixels."""

    def generate(self) -> np.ndarray:
        """The images, computed now: uint8 of shape (N, H, W, 3)."""


@dataclass(frozen=True)
class ArrayImages:
    """Images held in memory as one uint8 array of shape (N, H, W, 3)."""

    pixels: np.ndarray

    def __post_init__(self) -> None:
        if self.pixels.dtype != np.uint8 or self.pixels.ndim != 4 or self.pixels.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 pixels of shape (N, H, W, 3), got {self.pixels.dtype} {self.pixels.shape}"
            )

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index])


class UnreadableImageError(OSError):
    """An image file that cannot be decoded; the message names the file."""


NOT_DATA = "__MACOSX"
"""The folder macOS zips put their resource forks in: never data."""


def is_metadata(name: str) -> bool:
    """A file or folder name that is not data: hidden (``.DS_Store``, ``._cat.jpg``) or ``__MACOSX``."""
    return name.startswith(".") or name == NOT_DATA


@dataclass(frozen=True)
class FileImages:
    """Images read from files on demand (JPEG, PNG, ...), converted to RGB."""

    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        path = self.paths[index]
        if not path.is_file():
            raise FileNotFoundError(f"image {index} not found: {path}")
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except Exception as err:  # PIL says "broken" in OSError, SyntaxError, ValueError, EOFError, ...
            raise UnreadableImageError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class LabelledImages:
    """A split: images, integer labels in [0, num_classes) and the class names."""

    source: ImageSource
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or len(labels) != len(self.source):
            raise ValueError(f"{len(labels)} labels for {len(self.source)} images")
        if len(self.class_names) < 2:
            raise ValueError(f"a classification task needs at least 2 classes, got {len(self.class_names)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(self.class_names) - 1}], found {int(labels.min())}..{int(labels.max())}"
            )
        object.__setattr__(self, "labels", labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        """Number of samples per class, indexed by label."""
        return np.bincount(self.labels, minlength=self.num_classes)


@dataclass(frozen=True)
class DatasetSplits:
    """A long-tailed training split with balanced validation and test splits."""

    name: str
    train: LabelledImages
    val: LabelledImages
    test: LabelledImages

    def __post_init__(self) -> None:
        for split in (self.val, self.test):
            if split.class_names != self.train.class_names:
                raise ValueError("train, val and test must share the same class names")
        empty = [self.train.class_names[c] for c in np.flatnonzero(self.train.class_counts() == 0)]
        if empty:
            raise ValueError(f"training split has empty classes: {', '.join(empty[:10])}")


def subset(split: LabelledImages, indices: Sequence[int]) -> LabelledImages:
    """The samples of ``split`` at ``indices``, as a split of its own."""
    index = np.asarray(indices, dtype=np.int64)
    return LabelledImages(_IndexedImages(split.source, index), split.labels[index], split.class_names)


@dataclass(frozen=True)
class _IndexedImages:
    parent: ImageSource
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def image(self, index: int) -> Image.Image:
        return self.parent.image(int(self.index[index]))
