"""Ctrl-C of `ltsoups train-members` in a real DVC project: the members that finished are recorded in dvc.lock,
so that `dvc repro` keeps them; the one interrupted resumes later."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml
from dvc_repo import BIN, DvcRepo

pytestmark = pytest.mark.slow


def test_ctrl_c_records_the_members_that_finished(dvc_repo: DvcRepo) -> None:
    params = dvc_repo.params()
    params["train"]["schedule"]["min_steps"] = 50  # Ctrl-C lands while the second member trains
    dvc_repo.write_params(params)
    assert {"prepare", "theta0"} <= set(dvc_repo.repro("repro", "prepare", "theta0"))
    first = dvc_repo.root / "outputs" / "members" / "f1-r0" / "weights.safetensors.json"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    batch = subprocess.Popen(
        [str(BIN / "ltsoups"), "train-members", "--runner", "local"],
        cwd=dvc_repo.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As at a terminal: a suite started in the background (`cmd &`) hands its children SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600
    while not first.exists() and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    batch.send_signal(signal.SIGINT)
    out, err = batch.communicate(timeout=600)
    assert batch.returncode == 130, out + err
    finished = sorted(
        path.parent.name for path in (dvc_repo.root / "outputs" / "members").glob("*/weights.safetensors")
    )
    assert "f1-r0" in finished and len(finished) < 4
    assert f"recorded {len(finished)} train-member stage(s) in dvc.lock" in " ".join(out.split())
    assert "finished and kept" in " ".join(err.split())
    stages = yaml.safe_load((dvc_repo.root / "dvc.lock").read_text())["stages"]
    assert sorted(name for name in stages if name.startswith("train-member@")) == [
        f"train-member@{member}" for member in finished
    ]
