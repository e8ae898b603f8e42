"""The evaluate stage's analyses: calibration, weight change and the saved logits they come from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_config import tiny_params, write_params
from typer.testing import CliRunner

from ltsoups.analysis.calibration import calibrate
from ltsoups.cli.app import app
from ltsoups.data.stats import ClassStats, ShotThresholds
from ltsoups.predictions import Predictions
from ltsoups.stages.evaluate import Results
from ltsoups.workspace import Workspace

ROWS = ["zero_shot", "soup_f1", "soup_f2", "stage1", "final"]


@pytest.fixture
def params_file(tmp_path: Path, random_mini_clip: Path) -> Path:
    return write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(tmp_path / "outputs")))


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_every_model_gets_calibration_and_weight_change_from_logits_it_can_save(params_file: Path) -> None:
    p = ["--params", str(params_file)]
    invoke("run", *p)
    workspace = Workspace(params_file.parent / "outputs")
    results = Results.read(workspace)
    assert [entry.key for entry in results.rows] == ROWS
    assert results.entry("zero_shot").weight_change == {"weight_change": 0.0, "weight_change_relative": 0.0}
    assert results.entry("stage1").weight_change["weight_change"] > 0
    assert {"temperature", "nll", "ece", "brier", "nll_few", "brier_medium"} <= set(results.entry("final").calibration)
    # By default only the final model's logits are kept, test and val, and they give back its numbers.
    assert [entry.key for entry in results.rows if entry.predictions] == ["final"]
    final = results.entry("final")
    test, val = (Predictions.read(workspace.root / final.predictions[s]) for s in ("test", "val"))
    counts = np.array([row["train_count"] for row in json.loads(workspace.per_class.read_text())])
    groups = ClassStats(counts, ShotThresholds()).class_groups()  # the tiny config keeps the default thresholds
    assert calibrate(val.logits, val.labels, test.logits, test.labels, groups).as_dict() == final.calibration
    assert {"nll_tail", "ece_tail", "brier_tail"} <= set(final.calibration)  # the tiny task's classes are all tail
    assert 100 * test.correct.mean() == pytest.approx(final.scores["overall"])
    metrics = json.loads(workspace.metrics.read_text())
    assert {"nll", "ece", "brier", "weight_change_relative"} <= set(metrics["final"])

    invoke("evaluate", "--save-logits", "all", *p)
    saved = sorted(path.name for path in (workspace.predictions_dir / "test").glob("*.safetensors"))
    assert saved == sorted(f"{key}.safetensors" for key in ROWS)
    invoke("evaluate", "--save-logits", "none", *p)
    assert not list(workspace.predictions_dir.rglob("*.safetensors*"))  # no logits the results no longer name
    table = invoke("report", "--calibration", *p)
    assert "Calibration after temperature scaling" in table and "stage 1 + CR" in table
