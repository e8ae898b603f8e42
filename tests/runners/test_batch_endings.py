"""How a batch ends when it does not end well: Ctrl-C keeps and reports the members that finished, and no member
run stays RUNNING in MLflow, whether its process was stopped or the store was away when the member ended."""

from __future__ import annotations

from pathlib import Path

import pytest
from member_runs import Probe, Run

from ltsoups.contracts import BatchInterrupted, PluginParams, Worker
from ltsoups.plugins.runners import LocalRunner
from ltsoups.runners.batch import train_members
from ltsoups.stages.context import RunContext
from ltsoups.tracking import pipeline_tracking

pytestmark = pytest.mark.slow

LOCAL = LocalRunner(PluginParams())


def tracked(experiment: str, uri: str) -> list[str]:
    return ["tracking.enabled=true", f"tracking.uri={uri}", f"tracking.experiment={experiment}"]


def member_runs(experiment: str, uri: str) -> dict[str, object]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return {run.data.params["member"]: run for run in runs if run.data.tags.get("kind") == "member"}


def test_ctrl_c_keeps_the_finished_members_names_them_and_closes_every_run(
    planned_run: Run, tmp_path: Path, mlflow_server: str
) -> None:
    run = planned_run.clone(tmp_path / "run")

    def ctrl_c_in_second_member(member: str, worker: Worker, attempt: int, step: int) -> None:
        if member == "f1-r1" and step >= 1:
            raise KeyboardInterrupt

    config = run.config(*tracked("ctrl-c", mlflow_server))
    with pytest.raises(BatchInterrupted) as stopped, pipeline_tracking(config, run.workspace) as tracking:
        train_members(
            RunContext(config), run.workspace, None, LOCAL, Probe(ctrl_c_in_second_member), tracking.member_tracking()
        )
    assert (stopped.value.finished, stopped.value.unfinished) == (["f1-r0"], ["f1-r1", "f2-r0", "f2-r1"])
    assert "f1-r0" in str(stopped.value) and list(run.member_digests()) == ["f1-r0"]
    runs = member_runs("ctrl-c", mlflow_server)
    assert {member: r.info.status for member, r in runs.items()} == {"f1-r0": "FINISHED", "f1-r1": "KILLED"}


def test_a_member_run_left_open_is_closed_at_the_next_contact(
    planned_run: Run, tmp_path: Path, mlflow_server: str
) -> None:
    """What a store that was away when the member ended leaves (its worker could not end the run): the next batch
    that meets the member closes it. The lost request is replayed by setting the run back to RUNNING."""
    from mlflow import MlflowClient

    run = planned_run.clone(tmp_path / "run")
    config = run.config(*tracked("left-open", mlflow_server))
    with pipeline_tracking(config, run.workspace) as tracking:
        train_members(RunContext(config), run.workspace, ["f1-r0"], LOCAL, None, tracking.member_tracking())
    (trained,) = member_runs("left-open", mlflow_server).values()
    MlflowClient(mlflow_server).update_run(trained.info.run_id, status="RUNNING")

    with pipeline_tracking(config, run.workspace) as tracking:
        again = train_members(RunContext(config), run.workspace, ["f1-r0"], LOCAL, None, tracking.member_tracking())
    assert again.up_to_date == ["f1-r0"]
    (closed,) = member_runs("left-open", mlflow_server).values()
    assert closed.info.status == "FINISHED" and closed.data.tags["closed_by"].startswith("driver")
