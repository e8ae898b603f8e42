"""List-file datasets (ImageNet-LT / Places-LT / iNaturalist format) from generated PNG and JPEG files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dataset_formats import CLASS_NAMES, COLOURS, TRAIN_COUNTS, ImageTree

from ltsoups.data.file_splits import ClassNamesFormat, DatasetFormatError, SplitFiles
from ltsoups.data.listfile import list_file_counts, load_list_files


def split_files(lists: dict[str, Path]) -> SplitFiles:
    return SplitFiles(lists["train"], lists["val"], lists["test"])


def names_file(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_loads_images_labels_and_class_names(image_tree: ImageTree, tmp_path: Path) -> None:
    lists = image_tree.write_lists(tmp_path / "lists")
    names = names_file(tmp_path / "classnames.txt", list(CLASS_NAMES))
    splits = load_list_files("lt", image_tree.root, split_files(lists), names)
    assert splits.train.class_names == CLASS_NAMES
    assert list(splits.train.class_counts()) == list(TRAIN_COUNTS)
    assert len(splits.val) == len(splits.test) == 3
    image = splits.train.source.image(len(splits.train) - 1)
    assert image.mode == "RGB" and image.size == (8, 8)
    assert image.getpixel((4, 4)) == COLOURS[2]


def test_counts_come_from_the_train_list_without_images(image_tree: ImageTree, tmp_path: Path) -> None:
    lists = image_tree.write_lists(tmp_path / "lists")
    shutil.rmtree(image_tree.root)
    assert list(list_file_counts(lists["train"], None)) == list(TRAIN_COUNTS)


def test_without_a_name_file_classes_are_numbered(image_tree: ImageTree, tmp_path: Path) -> None:
    splits = load_list_files("lt", image_tree.root, split_files(image_tree.write_lists(tmp_path)), None)
    assert splits.train.class_names == ("class_0", "class_1", "class_2")


def test_id_name_and_json_name_files(tmp_path: Path) -> None:
    train = names_file(tmp_path / "train.txt", ["a/1.jpg 0", "b/2.jpg 1"])
    ids = names_file(tmp_path / "ids.txt", ["n01440764 tench fish", "n01443537 goldfish"])
    assert list(list_file_counts(train, ids, ClassNamesFormat.ID_NAME)) == [1, 1]
    categories = tmp_path / "categories.json"
    categories.write_text(json.dumps([{"id": 0, "name": "Aves"}, {"id": 1, "name": "Plantae"}]))
    assert list(list_file_counts(train, categories, ClassNamesFormat.JSON_NAME)) == [1, 1]


def test_paths_with_spaces_keep_the_last_token_as_label(tmp_path: Path) -> None:
    train = names_file(tmp_path / "train.txt", ["my photos/1.jpg 0", "my photos/2.jpg\t1"])
    assert list(list_file_counts(train, None)) == [1, 1]


@pytest.mark.parametrize(
    ("lines", "names", "message"),
    [
        (["a.jpg 0", "b.jpg 1", "c.jpg 3"], ["x", "y", "z"], r"train.txt:3: label 3 is out of range.*has 3 names"),
        (["a.jpg 0", "b.jpg 1"], ["x", "y", "z"], r"has 3 names but .*train.txt only uses labels 0..1"),
        (["a.jpg 0", "b.jpg 2"], None, r"train.txt: no training samples for class\(es\) 1 \(class_1\)"),
        (["a.jpg 0", "b.jpg 0"], None, r"at least 2 classes, found 1"),
        (["a.jpg 0", "b.jpg cat"], None, r"train.txt:2: label 'cat' is not an integer"),
        (["a.jpg 0", "", "b.jpg"], None, r"train.txt:3: expected '<relative image path> <label>'"),
        (["a.jpg 0", "b.jpg -1"], None, r"train.txt:2: label -1 is negative"),
    ],
)
def test_bad_train_lists_are_refused_naming_file_and_line(
    tmp_path: Path, lines: list[str], names: list[str] | None, message: str
) -> None:
    train = names_file(tmp_path / "train.txt", lines)
    names_path = names_file(tmp_path / "names.txt", names) if names is not None else None
    with pytest.raises(DatasetFormatError, match=message):
        list_file_counts(train, names_path)


def test_a_val_label_beyond_the_training_classes_is_refused(image_tree: ImageTree, tmp_path: Path) -> None:
    lists = image_tree.write_lists(tmp_path)
    lists["val"].write_text(lists["val"].read_text() + "val/cat/0.png 7\n")
    with pytest.raises(DatasetFormatError, match=r"val.txt:4: label 7 is out of range"):
        load_list_files("lt", image_tree.root, split_files(lists), None)


def test_missing_files_are_named(image_tree: ImageTree, tmp_path: Path) -> None:
    lists = image_tree.write_lists(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"test list not found: .*nowhere.txt"):
        load_list_files("lt", image_tree.root, SplitFiles(lists["train"], lists["val"], tmp_path / "nowhere.txt"), None)
    with pytest.raises(FileNotFoundError, match="class-name file not found"):
        load_list_files("lt", image_tree.root, split_files(lists), tmp_path / "names.txt")
    with pytest.raises(FileNotFoundError, match="image root not found"):
        load_list_files("lt", tmp_path / "elsewhere", split_files(lists), None)


def test_a_wrong_image_root_fails_at_the_first_image(image_tree: ImageTree, tmp_path: Path) -> None:
    lists = image_tree.write_lists(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"train.txt:1: image .* not found; is the image root"):
        load_list_files("lt", tmp_path, split_files(lists), None)


def test_labels_are_int64_in_file_order(image_tree: ImageTree, tmp_path: Path) -> None:
    splits = load_list_files("lt", image_tree.root, split_files(image_tree.write_lists(tmp_path)), None)
    assert splits.train.labels.dtype == np.int64
    assert list(splits.train.labels) == [y for _, y in image_tree.samples["train"]]
