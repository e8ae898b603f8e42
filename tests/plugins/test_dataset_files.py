"""Each built-in dataset lists the files it reads (what the `data` stage fingerprints)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_formats import CLASS_NAMES, ImageTree

from ltsoups.contracts import Dataset
from ltsoups.data.dataset import DatasetSplits
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return installed_registry()


def create(registry: PluginRegistry, name: str, **params: object) -> Dataset:
    return registry.create(PluginKind.DATASET, name, params)


def images(splits: DatasetSplits) -> set[Path]:
    return {path for split in (splits.train, splits.val, splits.test) for path in split.source.paths}


def tree_images(tree: ImageTree) -> set[Path]:
    return {tree.root / path for rows in tree.samples.values() for path, _ in rows}


def test_generated_data_reads_no_file(registry: PluginRegistry) -> None:
    assert create(registry, "embedded").files() == ()


def test_image_folders_list_every_image(registry: PluginRegistry, image_tree: ImageTree) -> None:
    dataset = create(registry, "image-folder", root=str(image_tree.root))
    assert set(dataset.files()) == tree_images(image_tree) == images(dataset.load())


def test_image_folder_lists_name_the_lists_and_their_images(
    registry: PluginRegistry, image_tree: ImageTree, tmp_path: Path
) -> None:
    listed = tmp_path / "train.txt"
    listed.write_text("cat/0.png\ndog/0.png\nfox/0.png\n")
    lists = {"train": str(listed), "val": str(listed), "test": str(listed)}
    dataset = create(registry, "image-folder", root=str(image_tree.root / "train"), lists=lists)
    train = image_tree.root / "train"
    assert set(dataset.files()) == {listed, train / "cat/0.png", train / "dog/0.png", train / "fox/0.png"}


def test_list_files_name_lists_class_names_and_images(
    registry: PluginRegistry, image_tree: ImageTree, tmp_path: Path
) -> None:
    lists = image_tree.write_lists(tmp_path / "lists")
    names = tmp_path / "names.txt"
    names.write_text("\n".join(CLASS_NAMES) + "\n")
    params = {"root": str(image_tree.root), "lists": {k: str(v) for k, v in lists.items()}, "class_names": str(names)}
    dataset = create(registry, "list-file", **params)
    assert set(dataset.files()) == {*lists.values(), names, *tree_images(image_tree)}
    assert images(dataset.load()) <= set(dataset.files())


def test_csv_tables_name_tables_and_images(registry: PluginRegistry, image_tree: ImageTree, tmp_path: Path) -> None:
    tables = image_tree.write_csv(tmp_path)
    dataset = create(registry, "csv", root=str(image_tree.root), tables={k: str(v) for k, v in tables.items()})
    assert set(dataset.files()) == {*tables.values(), *tree_images(image_tree)}


def test_tiny_imagenet_names_class_files_images_and_val_labels(
    registry: PluginRegistry, tiny_imagenet_root: Path
) -> None:
    dataset = create(registry, "tiny-imagenet-lt", root=str(tiny_imagenet_root), n_max=12, rho=6, val_per_class=2)
    files = set(dataset.files())
    folder = tiny_imagenet_root / "tiny-imagenet-200"
    assert {folder / "wnids.txt", folder / "words.txt", folder / "val" / "val_annotations.txt"} <= files
    assert images(dataset.load()) <= files
    assert len(files) == 3 + 3 * 12 + 3 * 5  # every training image (the long tail is drawn from them all)
    assert not any("test" in path.parts for path in files)


def test_cifar_names_its_three_files(registry: PluginRegistry, cifar_root: Path) -> None:
    dataset = create(registry, "cifar100-lt", root=str(cifar_root))
    assert set(dataset.files()) == {cifar_root / "cifar-100-python" / name for name in ("train", "test", "meta")}
