"""List-file datasets: one text file per split, each line "relative/path/to/image.jpg label".

This is the format of ImageNet-LT, Places-LT and iNaturalist 2018 (ImageNet_LT_train.txt, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltsoups.data.dataset import DatasetSplits
from ltsoups.data.file_splits import (
    ClassNamesFormat,
    DatasetFormatError,
    SplitFiles,
    SplitIndex,
    build_splits,
    indexed_files,
    numbered_lines,
    refuse_metadata,
    require_dir,
    resolve_class_names,
)


def read_list_file(path: Path, image_root: Path, what: str) -> SplitIndex:
    """Parse a list file; the label is the last token, so image paths may contain spaces."""
    paths: list[Path] = []
    labels: list[int] = []
    lines: list[int] = []
    for number, line in numbered_lines(path, what):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DatasetFormatError(f"{path}:{number}: expected '<relative image path> <label>', got {line!r}")
        relative, label = parts
        refuse_metadata(relative, path, number)
        try:
            labels.append(int(label))
        except ValueError:
            raise DatasetFormatError(f"{path}:{number}: label {label!r} is not an integer") from None
        paths.append(image_root / relative)
        lines.append(number)
    return SplitIndex(path, tuple(paths), np.array(labels, dtype=np.int64), np.array(lines, dtype=np.int64))


def list_file_counts(
    train_list: Path, names_file: Path | None, spelling: ClassNamesFormat = ClassNamesFormat.NAME
) -> np.ndarray:
    """Training counts per class, from the train list alone (no image is opened)."""
    train = read_list_file(train_list, Path(), "train list")
    return np.bincount(train.labels, minlength=len(resolve_class_names(train, names_file, spelling)))


def load_list_files(
    name: str,
    image_root: Path,
    lists: SplitFiles,
    names_file: Path | None,
    spelling: ClassNamesFormat = ClassNamesFormat.NAME,
) -> DatasetSplits:
    """Train/val/test splits from three list files whose paths are relative to ``image_root``."""
    require_dir(image_root, "image root")
    train = read_list_file(lists.train, image_root, "train list")
    val = read_list_file(lists.val, image_root, "val list")
    test = read_list_file(lists.test, image_root, "test list")
    return build_splits(name, train, val, test, resolve_class_names(train, names_file, spelling), image_root)


def list_files_read(image_root: Path, lists: SplitFiles, names_file: Path | None) -> tuple[Path, ...]:
    """The list files, the class-name file and every image the lists name."""
    splits = [read_list_file(path, image_root, "list file") for path in lists]
    return indexed_files(splits, *lists, names_file)
