"""Image-folder datasets: split folders, or class folders with list files."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_formats import CLASS_NAMES, TRAIN_COUNTS, ImageTree, write_image

from ltsoups.data.file_splits import DatasetFormatError, SplitFiles
from ltsoups.data.folder import folder_list_counts, load_folder_lists, load_split_folders, split_folder_counts


def folders(root: Path) -> SplitFiles:
    return SplitFiles(root / "train", root / "val", root / "test")


def test_split_folders_give_sorted_class_names_and_counts(image_tree: ImageTree) -> None:
    splits = load_split_folders("folders", folders(image_tree.root))
    assert splits.train.class_names == CLASS_NAMES
    assert list(splits.train.class_counts()) == list(TRAIN_COUNTS)
    assert list(split_folder_counts(folders(image_tree.root))) == list(TRAIN_COUNTS)
    assert list(splits.test.labels) == [0, 1, 2]
    assert splits.val.source.image(0).size == (8, 8)


def test_a_class_may_be_absent_from_val_but_not_from_train(image_tree: ImageTree) -> None:
    for image in (image_tree.root / "val" / "dog").iterdir():
        image.unlink()
    assert list(load_split_folders("folders", folders(image_tree.root)).val.class_counts()) == [1, 0, 1]
    for image in (image_tree.root / "train" / "fox").iterdir():
        image.unlink()
    with pytest.raises(DatasetFormatError, match=r"train: no training samples for class\(es\) 2 \(fox\)"):
        split_folder_counts(folders(image_tree.root))


def test_val_folders_must_name_training_classes(image_tree: ImageTree) -> None:
    write_image(image_tree.root / "val" / "wolf" / "0.png", 0)
    with pytest.raises(DatasetFormatError, match="class folder\\(s\\) wolf do not exist in the train split"):
        load_split_folders("folders", folders(image_tree.root))


def test_a_single_class_folder_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "cat" / "0.png", 0)
    with pytest.raises(DatasetFormatError, match="at least 2 classes, found 1"):
        split_folder_counts(folders(tmp_path))


def test_missing_split_folder_is_named(image_tree: ImageTree) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found \(expected a folder\): .*nothing"):
        load_split_folders(
            "folders", SplitFiles(image_tree.root / "train", image_tree.root / "nothing", image_tree.root)
        )


def test_class_folders_with_list_files(tmp_path: Path) -> None:
    root = tmp_path / "classes"
    for name, label in (("cat/a.png", 0), ("cat/b.jpg", 0), ("dog/c.png", 1), ("dog/d.png", 1)):
        write_image(root / name, label)
    lists = {split: tmp_path / f"{split}.txt" for split in ("train", "val", "test")}
    lists["train"].write_text("cat/a.png\ncat/b.jpg\ndog/c.png\n")
    lists["val"].write_text("dog/d.png\n")
    lists["test"].write_text("cat/a.png\ndog/d.png\n")
    files = SplitFiles(lists["train"], lists["val"], lists["test"])
    splits = load_folder_lists("folders", root, files)
    assert splits.train.class_names == ("cat", "dog")
    assert list(splits.train.class_counts()) == [2, 1]
    assert list(folder_list_counts(root, lists["train"])) == [2, 1]
    assert list(splits.test.labels) == [0, 1]
    lists["val"].write_text("dog/d.png\nwolf/e.png\n")
    with pytest.raises(DatasetFormatError, match=r"val.txt:2: 'wolf/e.png' is not inside a class folder"):
        load_folder_lists("folders", root, files)
