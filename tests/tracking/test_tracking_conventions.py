"""MLflow's conventions on the runs of `ltsoups run` (the session's served run, logged to a real `mlflow server`):
source tags and run names, dataset inputs, members' validation accuracy, system metrics, runs spanning their work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from served import SERVED_MEMBERS

from ltsoups.plan import Manifest, Plan
from ltsoups.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture
def tree(served_run, run_tree):
    return run_tree(served_run.experiment, served_run.uri)


@pytest.fixture
def workspace(served_run) -> Workspace:
    return Workspace(served_run.folder / "outputs")


def test_every_run_has_mlflow_source_tags_and_its_name(tree) -> None:
    (parent,) = tree.parents
    for run in [parent, *tree.children(parent.info.run_id)]:
        tags = run.data.tags
        assert tags["mlflow.runName"] == run.info.run_name
        assert tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.source.name"] and tags["mlflow.user"]
        assert len(tags["mlflow.source.git.commit"]) == 40  # the tests run from a git checkout of ltsoups


def _inputs(run) -> dict[str, tuple[str, str, dict]]:
    """context -> (dataset name, digest, profile) of the run's dataset inputs."""
    inputs = {}
    for item in run.inputs.dataset_inputs:
        (context,) = [tag.value for tag in item.tags if tag.key == "mlflow.data.context"]
        inputs[context] = (item.dataset.name, item.dataset.digest, json.loads(item.dataset.profile))
    return inputs


def test_members_cr_and_evaluation_name_their_training_data(tree, workspace: Workspace) -> None:
    plan = Plan.read(workspace.plan)
    (parent,) = tree.parents
    full = (plan.dataset.name, plan.dataset.labels_sha256[:12])
    for run in tree.children(parent.info.run_id, "retrain-head") + tree.children(parent.info.run_id, "evaluation"):
        ((name, digest, profile),) = _inputs(run).values()
        assert (name, digest) == full
        assert profile["size"] == plan.dataset.size and profile["class_counts"] == list(plan.class_counts)
    members = tree.children(parent.info.run_id, "member")
    assert sorted(run.data.params["member"] for run in members) == SERVED_MEMBERS
    for run in members:
        member = run.data.params["member"]
        manifest = Manifest.read(workspace.manifest(member))
        inputs = _inputs(run)
        assert inputs["source"][:2] == full
        name, digest, profile = inputs["train"]
        assert (name, digest) == (f"{plan.dataset.name} {member}", manifest.content_sha256[:12])
        assert profile["size"] == int(run.data.params["subset_size"])
        assert profile["class_counts"] == list(manifest.class_counts)


def test_members_log_their_final_validation_accuracy(tree) -> None:
    (parent,) = tree.parents
    for run in tree.children(parent.info.run_id, "member"):
        metrics = run.data.metrics
        assert {"val/overall", "val/balanced", "val/few"} <= set(metrics)  # the tiny data has no many-shot class
        assert all(0 <= metrics[key] <= 100 for key in ("val/overall", "val/balanced", "val/few"))
        (last,) = [m.step for m in tree.client.get_metric_history(run.info.run_id, "val/balanced")][-1:]
        assert last == metrics["steps"]


def test_member_and_cr_runs_carry_mlflow_system_metrics_when_it_is_on(tree) -> None:
    (parent,) = tree.parents
    trainings = tree.children(parent.info.run_id, "member") + tree.children(parent.info.run_id, "retrain-head")
    for run in trainings:
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
    for run in tree.children(parent.info.run_id, "soup") + tree.children(parent.info.run_id, "evaluation"):
        assert not any(key.startswith("system/") for key in run.data.metrics)


def _written_ms(path: Path) -> int:
    return int(path.stat().st_mtime * 1000)


def test_soup_and_evaluate_runs_start_before_their_outputs_are_written(tree, workspace: Workspace) -> None:
    (parent,) = tree.parents
    members = tree.children(parent.info.run_id, "member")
    soups = tree.children(parent.info.run_id, "soup")
    assert soups
    for soup in soups:
        assert soup.info.start_time >= max(run.info.end_time for run in members)
        assert soup.info.start_time <= _written_ms(workspace.soup) <= soup.info.end_time
    (evaluation,) = tree.children(parent.info.run_id, "evaluation")
    (head,) = tree.children(parent.info.run_id, "retrain-head")
    assert head.info.end_time <= evaluation.info.start_time <= _written_ms(workspace.metrics)
    assert _written_ms(workspace.metrics) <= evaluation.info.end_time
