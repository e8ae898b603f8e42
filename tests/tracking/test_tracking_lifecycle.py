"""Tracking lifecycle: a crash ends the run FAILED, a resume continues it, a dead server costs a warning."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltsoups.cli.app import app
from ltsoups.tracking.tracker import RUN_FILE
from ltsoups.training.resume import ResumeState


class CrashAtStep3:
    """Stands in for the CLI's progress bar and raises in the middle of a training."""

    def __init__(self, *args: object) -> None:
        pass

    def on_start(self, total_steps: int, first_step: int) -> None:
        pass

    def on_step(self, step: int, loss: float, lr: float) -> None:
        if step == 3:
            raise RuntimeError("injected crash at step 3")

    def on_validation(self, step: int, score: float) -> None:
        pass


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_crashed_member_ends_failed_and_its_resume_continues_the_run(
    write_tracked_params, run_tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = str(write_tracked_params(min_steps=6))
    for command in ("prepare", "theta0"):
        assert invoke(command, "--params", params).exit_code == 0
    with monkeypatch.context() as patch:
        patch.setattr("ltsoups.cli.progress.ProgressObserver", CrashAtStep3)
        crashed = invoke("train-member", "f1-r0", "--params", params)
    assert isinstance(crashed.exception, RuntimeError)

    member_dir = Path("outputs/members/f1-r0")
    assert ResumeState(member_dir / "resume.safetensors").exists()
    tree = run_tree("tiny")
    (parent,) = tree.parents
    (failed,) = tree.children(parent.info.run_id, "member")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["error"] == "RuntimeError: injected crash at step 3"
    assert parent.info.status == "FAILED"
    assert json.loads((member_dir / RUN_FILE).read_text())["run_id"] == failed.info.run_id

    assert invoke("train-member", "f1-r0", "--params", params).exit_code == 0
    tree = run_tree("tiny")
    assert [run.info.run_id for run in tree.parents] == [parent.info.run_id]
    (resumed,) = tree.children(parent.info.run_id, "member")
    assert resumed.info.run_id == failed.info.run_id
    assert resumed.info.status == "FINISHED"
    assert "error" not in resumed.data.tags
    assert resumed.data.tags["resumed_after"] == "RuntimeError: injected crash at step 3"
    assert set(tree.steps(resumed.info.run_id, "loss")) == set(range(1, 7))
    assert tree.parents[0].info.status == "RUNNING"  # continued; evaluate has not run yet


@pytest.mark.slow
def test_unreachable_server_costs_a_warning_not_the_training(
    write_tracked_params, unreachable_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    params = write_tracked_params(uri=unreachable_uri)
    with caplog.at_level(logging.WARNING, logger="ltsoups.tracking"):
        result = invoke("run", "--params", str(params))
    assert result.exit_code == 0, result.output
    assert Path("outputs/eval/metrics.json").is_file()
    assert all(Path(f"outputs/members/{m}/weights.safetensors").is_file() for m in ("f1-r0", "f2-r1"))
    warnings = [record.getMessage() for record in caplog.records if record.name == "ltsoups.tracking"]
    assert any(message.startswith(f"MLflow tracking at {unreachable_uri} failed") for message in warnings)
    (lost,) = [message for message in warnings if message.startswith("not logged")]
    assert "member f1-r0 run" in lost and "step metrics of member f1-r0" in lost and "evaluate run" in lost
    assert not Path("outputs/tracking/parent_run.json").exists()
