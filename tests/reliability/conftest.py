"""Fixtures for the reliability suite: clones of the tiny finished run (tests/conftest.py) that tests break."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_run import clone_run


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the finished run; the current directory is its root (paths in messages are short)."""
    root = clone_run(finished_run, tmp_path / "run")
    monkeypatch.chdir(root)
    return root
