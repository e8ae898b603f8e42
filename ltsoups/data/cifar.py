"""CIFAR-100-LT and the two-axis (rho, eta) benchmark: long-tailed subsets of CIFAR-100, via torchvision.

The CIFAR-100 "python version" files are pickles by design and torchvision reads them with pickle,
so the CIFAR root is trusted dataset input, like any dataset a user downloads and points a loader at.
ltsoups unpickles nothing else: checkpoints are safetensors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ltsoups.data.dataset import ArrayImages, DatasetSplits, LabelledImages
from ltsoups.data.profiles import DecayCurve, exponential_counts, two_axis_counts
from ltsoups.data.selection import kept_indices, long_tailed_selection
from ltsoups.data.stats import ClassStats, ShotThresholds

NUM_CLASSES = 100
IMAGES_PER_CLASS = 500
FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
HEAD_FLOOR = 101
"""Two-axis benchmark: head classes fall from n_max towards 101, tail classes from 100 towards n_max / rho."""


class ValidationSource(str, Enum):
    """Where the balanced validation split comes from."""

    TEST = "test"
    """The first images of each class in the test set; the test split is the rest (the published protocol)."""
    TRAIN = "train"
    """Training images the long-tailed subset leaves out; the test split is the whole test set."""


@dataclass(frozen=True)
class CifarSource:
    """Where the CIFAR-100 files are (``root/cifar-100-python/``) and how to read them."""

    root: Path
    download: bool = False
    verify_checksums: bool = True


@dataclass(frozen=True)
class CifarSplitRule:
    """How the long-tailed train split and the balanced val/test splits are drawn."""

    counts: np.ndarray
    seed: int = 0
    validation: ValidationSource = ValidationSource.TEST
    val_per_class: int = 10


def cifar100_lt_counts(rho: float, n_max: int = IMAGES_PER_CLASS) -> np.ndarray:
    """The CIFAR-100-LT profile: n_i = int(n_max * (1/rho)^(i/99)); rho 100 gives 500..5, 10,847 images."""
    return exponential_counts(NUM_CLASSES, n_max, rho)


def cifar100_two_axis_counts(
    eta: float, rho: float = 100, n_max: int = IMAGES_PER_CLASS, curve: DecayCurve = DecayCurve.EXP_INTERPOLATE
) -> np.ndarray:
    """Two-axis counts: H = eta/(1+eta) of the classes fall n_max..101, the other T fall 100..n_max/rho.

    The default curve is the authors' (``CIFAR100_IRF``): head 500 -> 103 and tail 100 -> 5 at rho 100.
    """
    if n_max <= HEAD_FLOOR:
        raise ValueError(f"n_max must exceed {HEAD_FLOOR} for head classes to exist, got {n_max}")
    tail_min = n_max / rho
    if tail_min > HEAD_FLOOR - 1:
        raise ValueError(f"rho {rho} leaves tail classes at {tail_min:g} samples, above the head/tail boundary 100")
    counts = two_axis_counts(NUM_CLASSES, eta, (n_max, HEAD_FLOOR), (HEAD_FLOOR - 1, tail_min), curve)
    if counts.min() < 1:
        raise ValueError(f"rho {rho} with n_max {n_max} leaves the last tail classes without images")
    return counts


@dataclass(frozen=True)
class TwoAxisRealised:
    """What the two-axis profile actually gives: head and tail class counts and their ratio."""

    requested_eta: float
    head: int
    tail: int

    @property
    def eta(self) -> float:
        return self.head / self.tail

    def __str__(self) -> str:
        return f"H={self.head}, T={self.tail}, eta={self.eta:.4g} (requested {self.requested_eta:g})"


def realised_two_axis(counts: np.ndarray, requested_eta: float) -> TwoAxisRealised:
    """H and T of ``counts`` with the benchmark's boundary: head classes have more than 100 samples."""
    stats = ClassStats(counts, ShotThresholds(head=HEAD_FLOOR - 1))
    return TwoAxisRealised(requested_eta, stats.head_classes, stats.tail_classes)


def head_and_rest_per_class(labels: np.ndarray, head: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first ``head`` images of each class and of the others, both grouped by class."""
    per_class = [np.flatnonzero(labels == label) for label in range(NUM_CLASSES)]
    return np.concatenate([i[:head] for i in per_class]), np.concatenate([i[head:] for i in per_class])


def read_cifar100(source: CifarSource, train: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Pixels (N, 32, 32, 3), fine labels and class names of CIFAR-100's train or test file.

    torchvision unpickles these files: ``source.root`` must be a copy of CIFAR-100 you trust.
    """
    folder = source.root / FOLDER
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing and not source.download:
        raise FileNotFoundError(
            f"CIFAR-100 file(s) {', '.join(missing)} not found in {folder}; "
            f"set download: true on a machine with internet, or point root at the folder holding {FOLDER}/"
        )
    try:
        data = _reader(source.verify_checksums)(str(source.root), train=train, download=source.download)
    except RuntimeError as err:
        raise ValueError(
            f"{folder}: torchvision rejected the CIFAR-100 files ({err}); they fail its md5 check. "
            f"Re-download them, or set verify_checksums: false for a copy you trust"
        ) from err
    return np.asarray(data.data, dtype=np.uint8), np.asarray(data.targets, dtype=np.int64), tuple(data.classes)


def cifar100_files(source: CifarSource) -> tuple[Path, ...]:
    """The three CIFAR-100 files, downloaded first if they are missing and ``source.download`` allows it."""
    folder = source.root / FOLDER
    if source.download and not all((folder / name).is_file() for name in FILES):
        read_cifar100(source, train=True)
    return tuple(folder / name for name in FILES)


@cache
def _reader(verify_checksums: bool) -> Any:
    """torchvision's CIFAR-100 reader; unverified, it checks that the files exist but not their md5 sums.

    Built on first use: planning and validation never read images and must not import torchvision.
    """
    from torchvision.datasets import CIFAR100

    if verify_checksums:
        return CIFAR100
    unchecked = {
        "train_list": [[name, None] for name, _ in CIFAR100.train_list],
        "test_list": [[name, None] for name, _ in CIFAR100.test_list],
        "meta": {**CIFAR100.meta, "md5": None},
    }
    return type("UncheckedCIFAR100", (CIFAR100,), unchecked)


def load_cifar100_lt(name: str, source: CifarSource, rule: CifarSplitRule) -> DatasetSplits:
    """A long-tailed train split with ``rule.counts`` images per class, and balanced val/test splits."""
    if len(rule.counts) != NUM_CLASSES:
        raise ValueError(f"CIFAR-100 has {NUM_CLASSES} classes, the profile has {len(rule.counts)}")
    pixels, labels, class_names = read_cifar100(source, train=True)
    test_pixels, test_labels, _ = read_cifar100(source, train=False)
    shuffled = long_tailed_selection(labels, rule.counts, rule.seed)
    train = _split(pixels, labels, kept_indices(shuffled, rule.counts), class_names)
    if rule.validation is ValidationSource.TEST:
        val_index, test_index = head_and_rest_per_class(test_labels, rule.val_per_class)
        val = _split(test_pixels, test_labels, val_index, class_names)
        test = _split(test_pixels, test_labels, test_index, class_names)
    else:
        held_out = zip(shuffled, rule.counts.tolist(), strict=True)
        val_index = np.concatenate([_held_out(indices, count, rule.val_per_class) for indices, count in held_out])
        val = _split(pixels, labels, val_index, class_names)
        test = _split(test_pixels, test_labels, np.arange(len(test_labels)), class_names)
    return DatasetSplits(name=name, train=train, val=val, test=test)


def _held_out(shuffled: np.ndarray, count: int, val_per_class: int) -> np.ndarray:
    if count + val_per_class > len(shuffled):
        raise ValueError(
            f"a validation split from train needs n_max + val_per_class <= {len(shuffled)}: "
            f"{count} training + {val_per_class} validation images asked of a class of {len(shuffled)}"
        )
    return shuffled[len(shuffled) - val_per_class :]


def _split(pixels: np.ndarray, labels: np.ndarray, index: np.ndarray, class_names: tuple[str, ...]) -> LabelledImages:
    return LabelledImages(ArrayImages(pixels[index]), labels[index], class_names)
