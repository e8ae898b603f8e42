"""Fixtures for CLI tests: a params.yaml for a run of seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_config import tiny_params, write_params


@pytest.fixture
def tiny_params_file(tmp_path: Path, random_mini_clip: Path) -> Path:
    """A params.yaml for a run that takes seconds; the working directory is tmp_path/outputs."""
    return write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(tmp_path / "outputs")))
