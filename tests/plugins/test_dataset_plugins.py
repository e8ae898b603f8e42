"""The built-in dataset plugins: registration, counts without images, loading (Params: test_plugin_contracts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dataset_formats import CLASS_NAMES, TRAIN_COUNTS, ImageTree
from pydantic import ValidationError

from ltsoups.contracts import Dataset
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry

BUILT_IN = {"embedded", "cifar100-lt", "cifar100-two-axis", "tiny-imagenet-lt", "list-file", "image-folder", "csv"}


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return installed_registry()


def test_every_built_in_dataset_is_registered(registry: PluginRegistry) -> None:
    ours = {entry.name for entry in registry.entries(PluginKind.DATASET) if entry.target.startswith("ltsoups.")}
    assert ours == BUILT_IN


def create(registry: PluginRegistry, name: str, **params: object) -> Dataset:
    return registry.create(PluginKind.DATASET, name, params)


def test_cifar_counts_need_no_files(registry: PluginRegistry, tmp_path: Path) -> None:
    counts = create(registry, "cifar100-lt", root=str(tmp_path / "absent")).class_counts()
    assert (counts.sum(), counts.max(), counts.min()) == (10_847, 500, 5)


def test_cifar_plugin_loads_through_torchvision(registry: PluginRegistry, cifar_root: Path) -> None:
    params = {"root": str(cifar_root), "verify_checksums": False, "n_max": 20, "rho": 10, "val_per_class": 2}
    splits = create(registry, "cifar100-lt", **params).load()
    assert splits.name == "cifar100-lt"
    assert (len(splits.train.class_names), int(splits.train.class_counts()[0]), len(splits.val)) == (100, 20, 200)


def test_two_axis_plugin_reports_realised_h_t_and_eta(registry: PluginRegistry, cifar_root: Path) -> None:
    dataset = create(registry, "cifar100-two-axis", eta=0.05)
    assert str(dataset.realised()) == "H=5, T=95, eta=0.05263 (requested 0.05)"
    params = {"root": str(cifar_root), "verify_checksums": False, "n_max": 102, "eta": 3, "val_per_class": 2}
    splits = create(registry, "cifar100-two-axis", **params).load()
    assert splits.name == "cifar100-two-axis (H=75, T=25, eta=3 (requested 3))"
    assert int(splits.train.class_counts()[0]) == 102


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"validation": "train"}, "n_max \\+ val_per_class must be <= 500"),
        ({"rho": 0.5}, "rho"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"n_max": 20, "rho": 100}, "leaves the last classes without images"),
    ],
)
def test_bad_cifar_params_are_refused(registry: PluginRegistry, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        registry.params_model(PluginKind.DATASET, "cifar100-lt").model_validate(params)


def test_two_axis_plugin_follows_the_authors_curve_or_the_geometric_one(registry: PluginRegistry) -> None:
    authors = create(registry, "cifar100-two-axis", eta=1).class_counts()
    geometric = create(registry, "cifar100-two-axis", eta=1, curve="geometric").class_counts()
    assert (int(authors.sum()), authors[49], authors[-1]) == (10_312, 103, 5)
    assert (int(geometric.sum()), geometric[49], geometric[-1]) == (14_128, 101, 5)
    with pytest.raises(ValidationError, match="curve"):
        registry.params_model(PluginKind.DATASET, "cifar100-two-axis").model_validate({"curve": "linear"})


def test_two_axis_params_need_head_classes(registry: PluginRegistry) -> None:
    with pytest.raises(ValidationError, match="n_max must exceed 101"):
        registry.params_model(PluginKind.DATASET, "cifar100-two-axis").model_validate({"n_max": 100})


def test_tiny_imagenet_plugin_counts_without_images_and_loads(
    registry: PluginRegistry, tiny_imagenet_root: Path
) -> None:
    dataset = create(registry, "tiny-imagenet-lt", root=str(tiny_imagenet_root), n_max=12, rho=6, val_per_class=2)
    assert dataset.class_counts().tolist() == [12, 4, 2]  # int(12 * (1/6)^(i/2))
    splits = dataset.load()
    assert splits.name == "tiny-imagenet-lt"
    assert np.array_equal(splits.train.class_counts(), dataset.class_counts())
    assert (len(splits.val), len(splits.test)) == (6, 9)
    with pytest.raises(ValidationError, match="leaves the last classes without images"):
        registry.params_model(PluginKind.DATASET, "tiny-imagenet-lt").model_validate({"n_max": 50, "rho": 100})


def test_list_file_plugin(registry: PluginRegistry, image_tree: ImageTree, tmp_path: Path) -> None:
    lists = {split: str(path) for split, path in image_tree.write_lists(tmp_path / "lists").items()}
    names = tmp_path / "names.txt"
    names.write_text("\n".join(CLASS_NAMES) + "\n")
    dataset = create(registry, "list-file", root=str(image_tree.root), lists=lists, class_names=str(names))
    assert list(dataset.class_counts()) == list(TRAIN_COUNTS)
    assert dataset.load().train.class_names == CLASS_NAMES


def test_image_folder_plugin_both_layouts(registry: PluginRegistry, image_tree: ImageTree, tmp_path: Path) -> None:
    by_folders = create(registry, "image-folder", root=str(image_tree.root))
    assert list(by_folders.class_counts()) == list(TRAIN_COUNTS)
    assert by_folders.load().test.class_names == CLASS_NAMES
    listed = tmp_path / "train.txt"
    listed.write_text("cat/0.png\ncat/1.jpg\ndog/0.png\nfox/0.png\n")
    lists = {"train": str(listed), "val": str(listed), "test": str(listed)}
    by_lists = create(registry, "image-folder", root=str(image_tree.root / "train"), lists=lists)
    assert list(by_lists.class_counts()) == [2, 1, 1]
    assert len(by_lists.load().val) == 4


def test_csv_plugin_with_class_columns(registry: PluginRegistry, image_tree: ImageTree, tmp_path: Path) -> None:
    tables = {split: str(path) for split, path in image_tree.write_csv(tmp_path, one_hot=True).items()}
    dataset = create(registry, "csv", root=str(image_tree.root), tables=tables, class_columns=list(CLASS_NAMES))
    assert list(dataset.class_counts()) == list(TRAIN_COUNTS)
    assert dataset.load().val.class_names == CLASS_NAMES
    with pytest.raises(ValidationError, match="class_columns already name the classes"):
        registry.params_model(PluginKind.DATASET, "csv").model_validate(
            {"root": ".", "tables": tables, "class_columns": ["a"], "class_names": "n.txt"}
        )


def test_embedded_counts_match_the_generated_task(registry: PluginRegistry) -> None:
    dataset = create(registry, "embedded", num_classes=4, n_max=6, rho=3, val_per_class=1, test_per_class=1)
    assert np.array_equal(dataset.class_counts(), dataset.load().train.class_counts())
