"""TinyImageNet-LT, the paper's ablation data: a long-tailed subset of Tiny ImageNet's standard layout.

``tiny-imagenet-200/`` holds ``wnids.txt`` (the class ids), ``words.txt`` (id -> names),
``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt`` (50 per class). Its ``test/`` images carry no labels and are not used.

The splits are the authors' (``TinyImageNet_IR100``, an ImageFolder over ``train/`` and ``val/``):
classes are the wnids in sorted order and a class's images are in sorted file-name order; train
keeps int(n_max * (1/rho)^(i/(K-1))) images of class i, chosen by the seeded shuffle of CIFAR-100-LT;
val is the first ``val_per_class`` (20) val images of each class, test the other 30.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltsoups.data.dataset import DatasetSplits, is_metadata
from ltsoups.data.file_splits import (
    DatasetFormatError,
    SplitIndex,
    build_splits,
    indexed_files,
    numbered_lines,
    require_dir,
)
from ltsoups.data.profiles import exponential_counts
from ltsoups.data.selection import kept_indices, long_tailed_selection

FOLDER = "tiny-imagenet-200"
IMAGES_PER_CLASS = 500
VAL_IMAGES_PER_CLASS = 50
_JPEG = frozenset({".jpeg", ".jpg"})


@dataclass(frozen=True)
class TinyImageNetSplitRule:
    """How the long-tailed train split and the balanced val/test splits are drawn."""

    counts: np.ndarray
    seed: int = 0
    val_per_class: int = 20


def dataset_folder(root: Path) -> Path:
    """``root/tiny-imagenet-200``, which must exist."""
    return require_dir(root / FOLDER, f"Tiny ImageNet folder ({FOLDER}/ under root {root})")


def read_wnids(folder: Path) -> tuple[str, ...]:
    """The class ids of ``wnids.txt``, sorted (the label order of the authors' ImageFolder)."""
    path = folder / "wnids.txt"
    wnids = [line for _, line in numbered_lines(path, "Tiny ImageNet class list")]
    repeated = sorted({w for w in wnids if wnids.count(w) > 1})
    if repeated:
        raise DatasetFormatError(f"{path}: class id(s) listed twice: {', '.join(repeated[:10])}")
    if len(wnids) < 2:
        raise DatasetFormatError(f"{path}: a classification task needs at least 2 classes, found {len(wnids)}")
    return tuple(sorted(wnids))


def tiny_imagenet_lt_counts(root: Path, rho: float, n_max: int = IMAGES_PER_CLASS) -> np.ndarray:
    """The exponential profile over the classes of ``wnids.txt`` (no image is listed or opened)."""
    return exponential_counts(len(read_wnids(dataset_folder(root))), n_max, rho)


def read_class_names(folder: Path, wnids: tuple[str, ...], names_file: Path | None) -> tuple[str, ...]:
    """A name per class: from ``names_file`` ('<wnid> <name>' lines), else the first name words.txt gives."""
    if names_file is None:
        path = folder / "words.txt"  # '<wnid>\t<name>, <synonym>, ...'
        names = {wnid: spelled.split(",")[0].strip() for wnid, spelled in _names_by_wnid(path, "\t").items()}
    else:
        path, names = names_file, _names_by_wnid(names_file, None)
    missing = [w for w in wnids if w not in names]
    if missing:
        raise DatasetFormatError(f"{path}: no name for class(es) {', '.join(missing[:10])}")
    return tuple(names[w] for w in wnids)


def _names_by_wnid(path: Path, separator: str | None) -> dict[str, str]:
    names = {}
    for number, line in numbered_lines(path, "class-name file"):
        parts = line.split(separator, 1)
        if len(parts) != 2 or not parts[1].strip():
            shown = "a tab" if separator else "a space"
            raise DatasetFormatError(f"{path}:{number}: expected '<wnid>', {shown} and a name, found {line!r}")
        names[parts[0].strip()] = parts[1].strip()
    return names


def _jpegs(folder: Path) -> list[Path]:
    jpegs = (p for p in folder.iterdir() if p.suffix.lower() in _JPEG and not is_metadata(p.name) and p.is_file())
    return sorted(jpegs, key=lambda p: p.name)


def read_train(folder: Path, wnids: tuple[str, ...]) -> SplitIndex:
    """Every training image, class after class, each class in sorted file-name order."""
    train = require_dir(folder / "train", "Tiny ImageNet train folder")
    unknown = sorted({p.name for p in train.iterdir() if p.is_dir() and not is_metadata(p.name)} - set(wnids))
    if unknown:
        raise DatasetFormatError(f"{train}: class folder(s) {', '.join(unknown[:10])} are not in wnids.txt")
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        images = _jpegs(require_dir(train / wnid / "images", f"training images of class {wnid}"))
        paths.extend(images)
        labels.extend([label] * len(images))
    return SplitIndex(train, tuple(paths), np.array(labels, dtype=np.int64))


def read_val(folder: Path, wnids: tuple[str, ...]) -> SplitIndex:
    """The val images named by ``val_annotations.txt``, class after class, each in sorted file-name order."""
    annotations = folder / "val" / "val_annotations.txt"
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    rows: list[tuple[int, str, int]] = []
    for number, line in numbered_lines(annotations, "Tiny ImageNet val annotations"):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DatasetFormatError(f"{annotations}:{number}: expected '<file>\\t<wnid>\\t...', found {line!r}")
        if fields[1] not in label_of:
            raise DatasetFormatError(f"{annotations}:{number}: class {fields[1]!r} is not in wnids.txt")
        rows.append((label_of[fields[1]], fields[0], number))
    rows.sort()
    images = folder / "val" / "images"
    return SplitIndex(
        annotations,
        tuple(images / name for _, name, _ in rows),
        np.array([label for label, _, _ in rows], dtype=np.int64),
        np.array([number for _, _, number in rows], dtype=np.int64),
    )


def _val_and_test(val: SplitIndex, num_classes: int, val_per_class: int) -> tuple[SplitIndex, SplitIndex]:
    """The first ``val_per_class`` images of each class, and the others."""
    per_class = [np.flatnonzero(val.labels == label) for label in range(num_classes)]
    short = [label for label, index in enumerate(per_class) if len(index) <= val_per_class]
    if short:
        raise DatasetFormatError(
            f"{val.origin}: class {short[0]} has {len(per_class[short[0]])} val images; val_per_class "
            f"{val_per_class} leaves none for the test split"
        )
    head = np.concatenate([index[:val_per_class] for index in per_class])
    rest = np.concatenate([index[val_per_class:] for index in per_class])
    return _subset(val, head), _subset(val, rest)


def _subset(split: SplitIndex, index: np.ndarray) -> SplitIndex:
    lines = None if split.lines is None else split.lines[index]
    return SplitIndex(split.origin, tuple(split.paths[i] for i in index), split.labels[index], lines)


def load_tiny_imagenet_lt(
    name: str, root: Path, rule: TinyImageNetSplitRule, class_names: Path | None = None
) -> DatasetSplits:
    """A long-tailed train split with ``rule.counts`` images per class, and balanced val/test splits."""
    folder = dataset_folder(root)
    wnids = read_wnids(folder)
    if len(rule.counts) != len(wnids):
        raise ValueError(f"{folder}/wnids.txt lists {len(wnids)} classes, the profile has {len(rule.counts)}")
    names = read_class_names(folder, wnids, class_names)
    train = read_train(folder, wnids)
    kept = kept_indices(long_tailed_selection(train.labels, rule.counts, rule.seed), rule.counts)
    val, test = _val_and_test(read_val(folder, wnids), len(wnids), rule.val_per_class)
    return build_splits(name, _subset(train, kept), val, test, names, folder)


def tiny_imagenet_files(root: Path, class_names: Path | None = None) -> tuple[Path, ...]:
    """What ``load_tiny_imagenet_lt`` reads: the class list and names, every train and val image, the val labels."""
    folder = dataset_folder(root)
    wnids = read_wnids(folder)
    val = read_val(folder, wnids)
    names = class_names if class_names is not None else folder / "words.txt"
    return indexed_files([read_train(folder, wnids), val], folder / "wnids.txt", names, val.origin)
