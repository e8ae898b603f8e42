"""Fixtures for the reliability suite: a tiny real run on disk that each test clones and breaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_config import tiny_params, write_params
from tiny_run import clone_run

from ltsoups.config import load_config
from ltsoups.pipeline import run_pipeline
from ltsoups.stages.context import RunContext
from ltsoups.training.loop import SilentObserver
from ltsoups.workspace import Workspace


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> Path:
    """A folder with params.yaml and every stage's outputs under outputs/; tests must clone it, not edit it."""
    root = tmp_path_factory.mktemp("finished-run")
    write_params(root, tiny_params(random_mini_clip))
    config = load_config(root / "params.yaml", [f"workdir={root / 'outputs'}"])
    run_pipeline(RunContext(config), Workspace(root / "outputs"), lambda name: SilentObserver())
    return root


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the finished run; the current directory is its root (paths in messages are short)."""
    root = clone_run(finished_run, tmp_path / "run")
    monkeypatch.chdir(root)
    return root
