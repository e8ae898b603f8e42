"""Two `ltsoups train-member` of one member in one workdir at once: the second stops at once naming the first.

Real CLI processes on a tiny run; the second writes nothing (no checkpoint, no resume state, no MLflow run)
and the first trains to the end as if alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from member_runs import Run

from ltsoups.io.locks import lock_path

pytestmark = pytest.mark.slow


def ltsoups(run: Run, *args: str) -> list[str]:
    return [sys.executable, "-m", "ltsoups", *args]


def test_a_second_writer_of_a_member_fails_naming_the_first_and_writes_nothing(
    planned_run: Run, tmp_path: Path, mlflow_server: str
) -> None:
    run = planned_run.clone(tmp_path / "run")
    settings = ["--set", "train.schedule.min_steps=200", "--set", "train.resume_every=4"]
    tracked = ["--set", "tracking.enabled=true", "--set", f"tracking.uri={mlflow_server}"]
    tracked += ["--set", "tracking.experiment=one-writer"]
    lock = lock_path(run.workspace.member("f1-r0"))
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.Popen(
        ltsoups(run, "train-member", "f1-r0", *settings, *tracked),
        cwd=run.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lock.exists(), "the first training never took the member's lock"
        second = subprocess.run(
            ltsoups(run, "train-member", "f1-r0", *settings, *tracked),
            cwd=run.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert first.poll() is None, "the first training ended before the second tried: raise min_steps"
        run_file = run.workspace.member_resume("f1-r0").with_name("mlflow_run.json")
        record_before = run_file.read_text() if run_file.exists() else None
    finally:
        out, err = first.communicate(timeout=600)
    assert second.returncode == 1
    message = " ".join(second.stderr.split())
    assert f"is being written by another process: pid {first.pid} on" in message, second.stderr
    assert "train-member f1-r0" in message  # the holder's command
    assert first.returncode == 0, err
    assert "wrote" in out and (run_file.read_text() if record_before else None) == record_before

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("one-writer")
    members = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("kind") == "member"]
    assert [(r.data.params["member"], r.info.status) for r in members] == [("f1-r0", "FINISHED")]
    assert not lock.exists()
