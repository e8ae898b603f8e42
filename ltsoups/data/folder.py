"""Image-folder datasets: one sub-folder per class, class names = sorted folder names.

Two layouts: split folders (``root/train/<class>/...``, ``root/val/...``, ``root/test/...``), or one
folder of classes (``root/<class>/...``) with a list file per split naming images relative to ``root``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltsoups.data.dataset import DatasetSplits, is_metadata
from ltsoups.data.file_splits import (
    DatasetFormatError,
    SplitFiles,
    SplitIndex,
    build_splits,
    check_classes,
    indexed_files,
    numbered_lines,
    refuse_metadata,
    require_dir,
)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def class_folders(folder: Path) -> tuple[str, ...]:
    """The sorted names of the sub-folders of ``folder``, hidden ones and ``__MACOSX`` left out.

    (torchvision's ``find_classes`` lists every folder, hidden ones too, and importing it loads torch,
    which `ltsoups validate` and `plan` never do.)
    """
    require_dir(folder, "class folder root")
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not is_metadata(p.name)))


def _images_in(folder: Path) -> list[Path]:
    """Image files under ``folder``, leaving out hidden files and folders (``._*`` forks too) and ``__MACOSX``."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(is_metadata(part) for part in p.relative_to(folder).parts)
        and p.is_file()
    )


def read_split_folder(folder: Path, class_names: tuple[str, ...]) -> SplitIndex:
    """Images under ``folder/<class>/``, labelled by their class folder (a class may be absent)."""
    unknown = sorted(set(class_folders(folder)) - set(class_names))
    if unknown:
        raise DatasetFormatError(f"{folder}: class folder(s) {', '.join(unknown[:10])} do not exist in the train split")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        images = _images_in(folder / name) if (folder / name).is_dir() else []
        paths.extend(images)
        labels.extend([label] * len(images))
    return SplitIndex(folder, tuple(paths), np.array(labels, dtype=np.int64))


def _train_folder(train: Path) -> tuple[SplitIndex, tuple[str, ...]]:
    class_names = class_folders(train)
    split = read_split_folder(train, class_names)
    check_classes(split, class_names)
    return split, class_names


def split_folder_counts(folders: SplitFiles) -> np.ndarray:
    """Training counts per class from the train folder's listing (no image is opened)."""
    train, class_names = _train_folder(folders.train)
    return np.bincount(train.labels, minlength=len(class_names))


def load_split_folders(name: str, folders: SplitFiles) -> DatasetSplits:
    """Train/val/test splits from three folders of class folders."""
    train, class_names = _train_folder(folders.train)
    val = read_split_folder(folders.val, class_names)
    test = read_split_folder(folders.test, class_names)
    return build_splits(name, train, val, test, class_names, folders.train.parent)


def split_folder_files(folders: SplitFiles) -> tuple[Path, ...]:
    """Every image of the three split folders, as ``load_split_folders`` lists them."""
    train, class_names = _train_folder(folders.train)
    return indexed_files([train, *(read_split_folder(folder, class_names) for folder in (folders.val, folders.test))])


def read_folder_list(path: Path, root: Path, class_names: tuple[str, ...], what: str) -> SplitIndex:
    """A list of image paths relative to ``root``, each labelled by its first folder."""
    index = {name: label for label, name in enumerate(class_names)}
    paths: list[Path] = []
    labels: list[int] = []
    lines: list[int] = []
    for number, line in numbered_lines(path, what):
        refuse_metadata(line, path, number)
        folder = Path(line).parts[0]
        if folder not in index or len(Path(line).parts) < 2:
            raise DatasetFormatError(
                f"{path}:{number}: {line!r} is not inside a class folder of {root} (expected '<class folder>/<image>')"
            )
        paths.append(root / line)
        labels.append(index[folder])
        lines.append(number)
    return SplitIndex(path, tuple(paths), np.array(labels, dtype=np.int64), np.array(lines, dtype=np.int64))


def _train_list(root: Path, train_list: Path) -> tuple[SplitIndex, tuple[str, ...]]:
    class_names = class_folders(root)
    split = read_folder_list(train_list, root, class_names, "train list")
    check_classes(split, class_names)
    return split, class_names


def folder_list_counts(root: Path, train_list: Path) -> np.ndarray:
    """Training counts per class from the train list (no image is opened)."""
    train, class_names = _train_list(root, train_list)
    return np.bincount(train.labels, minlength=len(class_names))


def load_folder_lists(name: str, root: Path, lists: SplitFiles) -> DatasetSplits:
    """Train/val/test splits from list files naming images inside the class folders of ``root``."""
    train, class_names = _train_list(root, lists.train)
    val = read_folder_list(lists.val, root, class_names, "val list")
    test = read_folder_list(lists.test, root, class_names, "test list")
    return build_splits(name, train, val, test, class_names, root)


def folder_list_files(root: Path, lists: SplitFiles) -> tuple[Path, ...]:
    """The three list files and every image they name."""
    class_names = class_folders(root)
    return indexed_files([read_folder_list(path, root, class_names, "list file") for path in lists], *lists)
