"""CSV-table datasets (NIH-CXR-LT style): integer label column or one 0/1 column per class."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_formats import CLASS_NAMES, TRAIN_COUNTS, ImageTree

from ltsoups.data.csv_table import CsvColumns, csv_counts, load_csv_tables
from ltsoups.data.file_splits import DatasetFormatError, SplitFiles


def tables(paths: dict[str, Path]) -> SplitFiles:
    return SplitFiles(paths["train"], paths["val"], paths["test"])


def test_integer_label_column(image_tree: ImageTree, tmp_path: Path) -> None:
    paths = image_tree.write_csv(tmp_path)
    splits = load_csv_tables("csv", image_tree.root, tables(paths), CsvColumns(), None)
    assert list(splits.train.class_counts()) == list(TRAIN_COUNTS)
    assert splits.train.class_names == ("class_0", "class_1", "class_2")
    assert splits.test.source.image(2).mode == "RGB"


def test_one_hot_class_columns_name_the_classes(image_tree: ImageTree, tmp_path: Path) -> None:
    paths = image_tree.write_csv(tmp_path, one_hot=True)
    columns = CsvColumns(one_hot=CLASS_NAMES)
    splits = load_csv_tables("csv", image_tree.root, tables(paths), columns, None)
    assert splits.train.class_names == CLASS_NAMES
    assert list(csv_counts(paths["train"], columns, None)) == list(TRAIN_COUNTS)
    assert list(splits.val.labels) == [0, 1, 2]


def test_missing_columns_are_named(image_tree: ImageTree, tmp_path: Path) -> None:
    paths = image_tree.write_csv(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"train.csv:1: missing column\(s\) id; the header has path, label"):
        csv_counts(paths["train"], CsvColumns(path="id"), None)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x.png,1,1,0", r"train.csv:4: expected exactly one class column set to 1, found cat, dog"),
        ("x.png,0,0,0", r"train.csv:4: expected exactly one class column set to 1, found none"),
        ("x.png,0,yes,0", r"train.csv:4: class columns must hold numbers"),
        (",0,1,0", r"train.csv:4: no value in column\(s\) path"),
    ],
)
def test_bad_one_hot_rows_are_refused(tmp_path: Path, row: str, message: str) -> None:
    train = tmp_path / "train.csv"
    train.write_text(f"path,cat,dog,fox\na.png,1,0,0\nb.png,0,1,0\n{row}\n")
    with pytest.raises(DatasetFormatError, match=message):
        csv_counts(train, CsvColumns(one_hot=CLASS_NAMES), None)


def test_label_out_of_range_of_the_name_file(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("path,label\na.png,0\nb.png,1\nc.png,2\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    with pytest.raises(DatasetFormatError, match=r"train.csv:4: label 2 is out of range"):
        csv_counts(train, CsvColumns(), names)
