"""CSV-table datasets (NIH-CXR-LT style): one CSV per split with an image-path column and the label.

The label is either one integer column, or one 0/1 column per class (NIH-CXR-LT's single-label
files: the class names are the column names and each row marks exactly one class).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltsoups.data.dataset import DatasetSplits
from ltsoups.data.file_splits import (
    ClassNamesFormat,
    DatasetFormatError,
    SplitFiles,
    SplitIndex,
    build_splits,
    check_classes,
    indexed_files,
    refuse_metadata,
    require_dir,
    require_file,
    resolve_class_names,
)


@dataclass(frozen=True)
class CsvColumns:
    """Which columns hold the image path and the label; ``one_hot`` non-empty switches to 0/1 columns."""

    path: str = "path"
    label: str = "label"
    one_hot: tuple[str, ...] = ()

    def required(self) -> tuple[str, ...]:
        return (self.path, *(self.one_hot or (self.label,)))


def read_csv_split(path: Path, image_root: Path, columns: CsvColumns, what: str) -> SplitIndex:
    """Image paths (relative to ``image_root``) and labels of one CSV file."""
    paths: list[Path] = []
    labels: list[int] = []
    lines: list[int] = []
    with require_file(path, what).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns.required() if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetFormatError(
                f"{path}:1: missing column(s) {', '.join(missing)}; the header has {', '.join(reader.fieldnames or [])}"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            empty = [c for c in columns.required() if not (row.get(c) or "").strip()]
            if empty:
                raise DatasetFormatError(f"{where}: no value in column(s) {', '.join(empty)}")
            one_hot = columns.one_hot
            labels.append(_one_hot_label(row, one_hot, where) if one_hot else _int(row[columns.label], where))
            refuse_metadata(row[columns.path], path, reader.line_num)
            paths.append(image_root / row[columns.path])
            lines.append(reader.line_num)
    return SplitIndex(path, tuple(paths), np.array(labels, dtype=np.int64), np.array(lines, dtype=np.int64))


def _int(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetFormatError(f"{where}: label {value!r} is not an integer") from None


def _one_hot_label(row: dict[str, str], class_columns: tuple[str, ...], where: str) -> int:
    try:
        marked = [i for i, column in enumerate(class_columns) if float(row[column]) > 0]
    except ValueError as err:
        raise DatasetFormatError(f"{where}: class columns must hold numbers ({err})") from None
    if len(marked) != 1:
        found = ", ".join(class_columns[i] for i in marked) or "none"
        raise DatasetFormatError(f"{where}: expected exactly one class column set to 1, found {found}")
    return marked[0]


def _class_names(
    train: SplitIndex, columns: CsvColumns, names_file: Path | None, spelling: ClassNamesFormat
) -> tuple[str, ...]:
    if not columns.one_hot:
        return resolve_class_names(train, names_file, spelling)
    check_classes(train, columns.one_hot)
    return columns.one_hot


def csv_counts(
    train_csv: Path, columns: CsvColumns, names_file: Path | None, spelling: ClassNamesFormat = ClassNamesFormat.NAME
) -> np.ndarray:
    """Training counts per class from the train CSV alone (no image is opened)."""
    train = read_csv_split(train_csv, Path(), columns, "train CSV")
    return np.bincount(train.labels, minlength=len(_class_names(train, columns, names_file, spelling)))


def load_csv_tables(
    name: str,
    image_root: Path,
    tables: SplitFiles,
    columns: CsvColumns,
    names_file: Path | None,
    spelling: ClassNamesFormat = ClassNamesFormat.NAME,
) -> DatasetSplits:
    """Train/val/test splits from three CSV files whose image paths are relative to ``image_root``."""
    require_dir(image_root, "image root")
    train = read_csv_split(tables.train, image_root, columns, "train CSV")
    val = read_csv_split(tables.val, image_root, columns, "val CSV")
    test = read_csv_split(tables.test, image_root, columns, "test CSV")
    return build_splits(name, train, val, test, _class_names(train, columns, names_file, spelling), image_root)


def csv_files_read(
    image_root: Path, tables: SplitFiles, columns: CsvColumns, names_file: Path | None
) -> tuple[Path, ...]:
    """The CSV files, the class-name file and every image the tables name."""
    splits = [read_csv_split(path, image_root, columns, "CSV file") for path in tables]
    return indexed_files(splits, *tables, names_file)
