"""`ltsoups run` logs the whole run tree: a parent, and a run per member, running soup, CR and evaluation.

The same tree from `dvc repro` (one process per stage, default sqlite store) is checked in tests/pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltsoups.cli.app import app

MEMBERS = ["f1-r0", "f1-r1", "f2-r0", "f2-r1"]
FACTORS = [1, 2]


def run_pipeline(params: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--params", str(params)])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_run_logs_every_run_to_a_server(write_tracked_params, mlflow_server, run_tree, complete_tree) -> None:
    run_pipeline(write_tracked_params(uri=mlflow_server))
    complete_tree(run_tree("tiny", mlflow_server), MEMBERS, FACTORS)
