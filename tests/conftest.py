"""Shared fixtures: a random mini-CLIP on disk, tiny datasets in the real on-disk formats, an MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dataset_formats import (
    CIFAR_TEST_PER_CLASS,
    CIFAR_TRAIN_PER_CLASS,
    TINY_TRAIN_PER_CLASS,
    TINY_VAL_PER_CLASS,
    ImageTree,
    write_cifar100,
    write_image_tree,
    write_tiny_imagenet,
)
from mlflow_server import ServerDidNotStart, free_port, local_mlflow_server
from tiny_config import save_random_mini_clip, tiny_params, write_params


@pytest.fixture(scope="session")
def random_mini_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained `ltsoups-mini` saved as safetensors (see tiny_config.py); tests must not modify it."""
    return save_random_mini_clip(tmp_path_factory.mktemp("backbone") / "mini.safetensors")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> Path:
    """A folder with params.yaml and every stage's outputs under outputs/; tests must copy it, not edit it."""
    from ltsoups.config import load_config
    from ltsoups.pipeline import run_pipeline
    from ltsoups.stages.context import RunContext
    from ltsoups.training.loop import SilentObserver
    from ltsoups.workspace import Workspace

    root = tmp_path_factory.mktemp("finished-run")
    write_params(root, tiny_params(random_mini_clip))
    config = load_config(root / "params.yaml", [f"workdir={root / 'outputs'}"])
    run_pipeline(RunContext(config), Workspace(root / "outputs"), lambda name: SilentObserver())
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-100 copy with 102 training and 12 test images per class; tests must not modify it."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar100(root, CIFAR_TRAIN_PER_CLASS, CIFAR_TEST_PER_CLASS)
    return root


@pytest.fixture(scope="session")
def tiny_imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding tiny-imagenet-200/ with 3 classes of 12 training and 5 val images; do not modify it."""
    root = tmp_path_factory.mktemp("tiny-imagenet")
    write_tiny_imagenet(root, TINY_TRAIN_PER_CLASS, TINY_VAL_PER_CLASS)
    return root


@pytest.fixture
def image_tree(tmp_path: Path) -> ImageTree:
    return write_image_tree(tmp_path / "images")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (sqlite store) on a free 127.0.0.1 port; its URI. Stopped at the end."""
    try:
        with local_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
            yield uri
    except ServerDidNotStart as err:
        pytest.fail(str(err))


@pytest.fixture
def unreachable_uri() -> str:
    """An http tracking URI on a 127.0.0.1 port nothing listens on: every request is refused."""
    return f"http://127.0.0.1:{free_port()}"
