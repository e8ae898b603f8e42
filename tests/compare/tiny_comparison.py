"""One tiny comparison (lt-soups and lt-soups-uniform at 2 seeds, MLflow on), run once for this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_config import tiny_params, write_params
from typer.testing import CliRunner

from ltsoups.cli.app import app

METHODS = ("lt-soups", "lt-soups-uniform")
SEEDS = (0, 1)
RESAMPLES = 300
EXPERIMENT = "compare-tiny"


@dataclass(frozen=True)
class TinyComparison:
    folder: Path
    """the working directory: params.yaml, mlflow.db, mlruns/"""
    params: Path
    root: Path
    """the comparison's folder"""
    output: str
    tracking_uri: str


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    return result.output


def run_tiny_comparison(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> Iterator[TinyComparison]:
    folder = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    params = write_params(
        folder,
        tiny_params(random_mini_clip, workdir=str(folder / "outputs"), tracking={"experiment": EXPERIMENT, "uri": uri}),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow's sqlite store puts artifacts in ./mlruns
        methods = [arg for name in METHODS for arg in ("--method", name)]
        output = run_cli("compare", *methods, "--seeds", "2", "--resamples", str(RESAMPLES), "--params", str(params))
        yield TinyComparison(folder, params, folder / "outputs" / "compare", output, uri)
