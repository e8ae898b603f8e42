"""Fixtures of the compare tests: the tiny comparison, run once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_comparison import TinyComparison, run_tiny_comparison


@pytest.fixture(scope="session")
def comparison(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> Iterator[TinyComparison]:
    yield from run_tiny_comparison(tmp_path_factory, random_mini_clip)
