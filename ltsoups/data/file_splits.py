"""Splits declared by index files (list files, CSV tables, image folders): checked paths and labels."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from ltsoups.data.dataset import NOT_DATA, DatasetSplits, FileImages, LabelledImages


class DatasetFormatError(ValueError):
    """A dataset's index files are inconsistent; the message names the file (and line) at fault."""


class ClassNamesFormat(str, Enum):
    """How a class-name file spells the class names, in label order."""

    NAME = "name"
    """One name per line."""
    ID_NAME = "id-name"
    """An id, whitespace, then the name (ImageNet-LT's and Places-LT's classnames.txt)."""
    JSON_NAME = "json-name"
    """A JSON list of objects with a "name" field (iNaturalist 2018's categories.json)."""


@dataclass(frozen=True)
class SplitFiles:
    """The index file (or folder) of each split."""

    train: Path
    val: Path
    test: Path

    def __iter__(self) -> Iterator[Path]:
        return iter((self.train, self.val, self.test))


@dataclass(frozen=True)
class SplitIndex:
    """Image paths and labels of one split, each remembering where it was declared."""

    origin: Path
    paths: tuple[Path, ...]
    labels: np.ndarray
    lines: np.ndarray | None = None
    """1-based line of each sample in ``origin``; None when samples come from a folder listing."""

    def where(self, index: int) -> str:
        if self.lines is None:
            return str(self.paths[index])
        return f"{self.origin}:{int(self.lines[index])}"


def indexed_files(splits: Iterable[SplitIndex], *index_files: Path | None) -> tuple[Path, ...]:
    """The images of ``splits`` and the files declaring them (None: no such file), each once, sorted."""
    images = {path for split in splits for path in split.paths}
    return tuple(sorted(images | {path for path in index_files if path is not None}))


def refuse_metadata(relative: str, index_file: Path, line: int) -> None:
    """A DatasetFormatError when an index file names a macOS resource fork (``._*``) or a file in ``__MACOSX/``."""
    parts = Path(relative).parts
    if any(part == NOT_DATA or part.startswith("._") for part in parts):
        raise DatasetFormatError(
            f"{index_file}:{line}: {relative!r} is macOS metadata (a '._' file or inside {NOT_DATA}/), "
            f"not an image; remove the line"
        )


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a FileNotFoundError saying which file of the dataset is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found (expected a folder): {path}")
    return path


def numbered_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """The non-blank lines of a text file, stripped, with their 1-based line numbers."""
    text = require_file(path, what).read_text(encoding="utf-8")
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_class_names(path: Path, spelling: ClassNamesFormat) -> tuple[str, ...]:
    """Class names in label order, read from a file spelled as ``spelling`` says."""
    if spelling is ClassNamesFormat.JSON_NAME:
        return _json_class_names(path)
    names = []
    for number, line in numbered_lines(path, "class-name file"):
        if spelling is ClassNamesFormat.ID_NAME:
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise DatasetFormatError(f"{path}:{number}: expected '<id> <name>', found only an id")
            line = parts[1]
        names.append(line)
    return tuple(names)


def _json_class_names(path: Path) -> tuple[str, ...]:
    try:
        entries = json.loads(require_file(path, "class-name file").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(entries, list):
        raise DatasetFormatError(f"{path}: expected a JSON list of objects with a 'name' field")
    for position, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"].strip()):
            raise DatasetFormatError(f"{path}: entry {position} has no 'name' string")
    return tuple(entry["name"].strip() for entry in entries)


def resolve_class_names(
    train: SplitIndex, names_file: Path | None, spelling: ClassNamesFormat = ClassNamesFormat.NAME
) -> tuple[str, ...]:
    """The class names of a task whose integer labels come from ``train``, checked against the name file.

    Without a name file, the classes are 0..max(label), named ``class_<i>``.
    """
    names = read_class_names(names_file, spelling) if names_file is not None else None
    if len(train.labels) == 0:
        raise DatasetFormatError(f"{train.origin}: the training split has no samples")
    _check_non_negative(train)
    top = int(train.labels.max())
    if names is not None and top >= len(names):
        first = int(np.argmax(train.labels >= len(names)))
        raise DatasetFormatError(
            f"{train.where(first)}: label {int(train.labels[first])} is out of range: "
            f"the class-name file {names_file} has {len(names)} names (labels 0..{len(names) - 1})"
        )
    if names is not None and top + 1 < len(names):
        raise DatasetFormatError(
            f"class-name file {names_file} has {len(names)} names but {train.origin} only uses labels 0..{top}; "
            f"the file must name exactly the classes of the task"
        )
    resolved = names if names is not None else tuple(f"class_{i}" for i in range(top + 1))
    check_classes(train, resolved)
    return resolved


def check_classes(train: SplitIndex, class_names: tuple[str, ...]) -> None:
    """At least two classes, each with at least one training sample."""
    if len(class_names) < 2:
        raise DatasetFormatError(
            f"{train.origin}: a classification task needs at least 2 classes, found {len(class_names)}"
        )
    counts = np.bincount(train.labels, minlength=len(class_names))
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        shown = ", ".join(f"{int(c)} ({class_names[c]})" for c in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise DatasetFormatError(f"{train.origin}: no training samples for class(es) {shown}{more}")


def check_labels(split: SplitIndex, num_classes: int) -> None:
    """Every label of ``split`` lies in [0, num_classes); the first that does not is named."""
    _check_non_negative(split)
    beyond = np.flatnonzero(split.labels >= num_classes)
    if len(beyond):
        first = int(beyond[0])
        raise DatasetFormatError(
            f"{split.where(first)}: label {int(split.labels[first])} is out of range: "
            f"the training split defines classes 0..{num_classes - 1}"
        )


def _check_non_negative(split: SplitIndex) -> None:
    negative = np.flatnonzero(split.labels < 0)
    if len(negative):
        first = int(negative[0])
        raise DatasetFormatError(f"{split.where(first)}: label {int(split.labels[first])} is negative")


def build_splits(
    name: str, train: SplitIndex, val: SplitIndex, test: SplitIndex, class_names: tuple[str, ...], image_root: Path
) -> DatasetSplits:
    """Checked train/val/test splits whose images are read from files on demand."""
    for split in (train, val, test):
        check_labels(split, len(class_names))
        _check_first_image(split, image_root)

    def labelled(split: SplitIndex) -> LabelledImages:
        return LabelledImages(FileImages(split.paths), split.labels, class_names)

    return DatasetSplits(name=name, train=labelled(train), val=labelled(val), test=labelled(test))


def _check_first_image(split: SplitIndex, root: Path) -> None:
    # Only the first image is checked: stat-ing 400k files on a network disk takes minutes, and a
    # wrong root (the usual mistake) already shows here; later images fail with their path when read.
    if split.paths and not split.paths[0].is_file():
        raise FileNotFoundError(f"{split.where(0)}: image {split.paths[0]} not found; is the image root {root} right?")
