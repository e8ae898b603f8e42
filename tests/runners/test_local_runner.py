"""The `local` runner: members one after another in this process; the first failure stops the batch by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from member_runs import Probe, Run
from tiny_config import ONE_ROUND_MEMBERS

from ltsoups.checkpoint import save_checkpoint, sidecar_path
from ltsoups.contracts import MemberFailed, PluginParams
from ltsoups.plugins.runners import LocalRunner
from ltsoups.runners.batch import train_members
from ltsoups.stages.context import RunContext

pytestmark = pytest.mark.slow

LOCAL = LocalRunner(PluginParams())


def test_the_first_failing_member_stops_the_batch_and_the_rerun_trains_the_rest(
    planned_run: Run, tmp_path: Path
) -> None:
    run = planned_run.clone(tmp_path / "run")
    foreign = run.workspace.member_resume("f1-r1").with_name("resume-step1.safetensors")
    save_checkpoint(foreign, {}, kind="resume-state", step=1, ema_updates=1, best_score=None, fingerprint="other")
    context = RunContext(run.config())
    probe = Probe()
    with pytest.raises(MemberFailed) as failed:
        train_members(context, run.workspace, None, LOCAL, probe)
    error = failed.value
    assert (list(error.failures), error.finished, error.not_trained) == (["f1-r1"], ["f1-r0"], ["f2-r0", "f2-r1"])
    assert str(error).startswith("member f1-r1 failed: CheckpointError: ")
    assert list(run.member_digests()) == ["f1-r0"]

    foreign.unlink()
    sidecar_path(foreign).unlink()
    again = train_members(context, run.workspace, None, LOCAL, probe)
    assert [output.job.member for output in again.trained] == ["f1-r1", "f2-r0", "f2-r1"]
    assert again.up_to_date == ["f1-r0"]
    assert sorted(run.member_digests()) == ONE_ROUND_MEMBERS
