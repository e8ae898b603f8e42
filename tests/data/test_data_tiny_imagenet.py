"""TinyImageNet-LT read from the standard tiny-imagenet-200/ layout, checked against the authors' ImageFolder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from dataset_formats import TINY_TRAIN_PER_CLASS, TINY_VAL_PER_CLASS, authors_selection, write_tiny_imagenet
from torchvision.datasets import ImageFolder

from ltsoups.data.dataset import DatasetSplits
from ltsoups.data.file_splits import DatasetFormatError
from ltsoups.data.tiny_imagenet import TinyImageNetSplitRule, load_tiny_imagenet_lt, tiny_imagenet_lt_counts

COUNTS = np.array([10, 4, 2])


def load(
    root: Path, counts: np.ndarray = COUNTS, seed: int = 0, val_per_class: int = 2, **kwargs: Path
) -> DatasetSplits:
    return load_tiny_imagenet_lt("tiny-imagenet-lt", root, TinyImageNetSplitRule(counts, seed, val_per_class), **kwargs)


def test_the_profile_needs_only_the_class_list(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-imagenet-200"
    folder.mkdir()
    (folder / "wnids.txt").write_text("".join(f"n{i:08d}\n" for i in range(200)))
    counts = tiny_imagenet_lt_counts(tmp_path, rho=100)
    # The authors' TinyImageNet_IR100: img_max * imb_factor^(i / (cls_num - 1)), truncated.
    assert counts.tolist() == [int(500 * 0.01 ** (i / 199)) for i in range(200)]
    assert (counts.sum(), counts.max(), counts.min()) == (21_549, 500, 5)


def test_train_split_is_the_authors_draw_over_their_image_folder(tiny_imagenet_root: Path) -> None:
    splits = load(tiny_imagenet_root, seed=3)
    reference = ImageFolder(str(tiny_imagenet_root / "tiny-imagenet-200" / "train"))
    kept = authors_selection(np.array(reference.targets), COUNTS, seed=3)
    assert list(splits.train.source.paths) == [Path(reference.samples[i][0]) for i in kept]
    assert splits.train.class_counts().tolist() == COUNTS.tolist()
    assert splits.train.class_names == ("goldfish", "Egyptian cat", "alp")  # sorted wnids, first name in words.txt


def test_val_is_the_first_images_of_each_class_by_file_name_and_test_the_rest(
    tiny_imagenet_root: Path, tmp_path: Path
) -> None:
    splits = load(tiny_imagenet_root, val_per_class=2)
    # The authors read val/ as class folders: rebuild that re-sorting of val/images into val/<wnid>/.
    folder = tiny_imagenet_root / "tiny-imagenet-200" / "val"
    for line in (folder / "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        (tmp_path / wnid).mkdir(exist_ok=True)
        shutil.copy(folder / "images" / name, tmp_path / wnid / name)
    reference = ImageFolder(str(tmp_path))
    per_class = [[Path(p).name for p, y in reference.samples if y == label] for label in range(3)]
    assert [p.name for p in splits.val.source.paths] == [n for names in per_class for n in names[:2]]
    assert [p.name for p in splits.test.source.paths] == [n for names in per_class for n in names[2:]]
    # Class 0 holds val_0, val_3, ..., val_12: by name val_12 comes second.
    assert [p.name for p in splits.val.source.paths[:2]] == ["val_0.JPEG", "val_12.JPEG"]
    assert splits.val.class_counts().tolist() == [2, 2, 2]
    assert splits.test.class_counts().tolist() == [TINY_VAL_PER_CLASS - 2] * 3


def test_class_names_from_a_wnid_name_file(tiny_imagenet_root: Path, tmp_path: Path) -> None:
    names = tmp_path / "classnames.txt"  # ImageNet-LT's format, naming more classes than the task has
    names.write_text("n01440764 tench\nn01443537 gold fish\nn02124075 Egyptian Mau\nn09193705 alpine pasture\n")
    splits = load(tiny_imagenet_root, class_names=names)
    assert splits.test.class_names == ("gold fish", "Egyptian Mau", "alpine pasture")


def test_greyscale_jpegs_load_as_rgb(tiny_imagenet_root: Path) -> None:
    splits = load(tiny_imagenet_root, counts=np.array([TINY_TRAIN_PER_CLASS, 1, 1]))
    grey = [p.name for p in splits.train.source.paths].index("n01443537_1.JPEG")
    image = splits.train.source.image(grey)
    assert (image.mode, image.size) == ("RGB", (8, 8))


def test_a_profile_asking_for_more_images_than_a_class_has_is_refused(tiny_imagenet_root: Path) -> None:
    with pytest.raises(ValueError, match="class 0 has 12 training images, the profile asks for 13"):
        load(tiny_imagenet_root, counts=np.array([13, 1, 1]))


def test_val_per_class_must_leave_test_images(tiny_imagenet_root: Path) -> None:
    with pytest.raises(DatasetFormatError, match="class 0 has 5 val images; val_per_class 5 leaves none"):
        load(tiny_imagenet_root, val_per_class=5)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200"):
        load(tmp_path)


def test_annotations_naming_an_unknown_class_are_refused_with_their_line(tmp_path: Path) -> None:
    folder = write_tiny_imagenet(tmp_path, train_per_class=2, val_per_class=2)
    with (folder / "val" / "val_annotations.txt").open("a") as annotations:
        annotations.write("val_99.JPEG\tn99999999\t0\t0\t7\t7\n")
    with pytest.raises(DatasetFormatError, match=r"val_annotations\.txt:7: class 'n99999999' is not in wnids\.txt"):
        load(tmp_path, counts=np.array([2, 2, 1]), val_per_class=1)


def test_train_folders_must_match_the_class_list(tmp_path: Path) -> None:
    folder = write_tiny_imagenet(tmp_path, train_per_class=2, val_per_class=2)
    (folder / "train" / "n00000001" / "images").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match=r"n00000001 are not in wnids\.txt"):
        load(tmp_path, counts=np.array([2, 2, 1]), val_per_class=1)
