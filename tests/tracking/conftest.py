"""Fixtures for tracking tests: a tiny real config, run trees read back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from served import SERVED_MODEL
from tiny_config import tiny_params, tiny_training, write_params
from typer.testing import CliRunner

from ltsoups.cli.app import app


@pytest.fixture
def write_tracked_params(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Write a params.yaml for a run of seconds (working directory: tmp_path); keyword args set tracking."""
    monkeypatch.chdir(tmp_path)  # MLflow's sqlite store puts artifacts in ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def write(min_steps: int = 3, **tracking: Any) -> Path:
        return _write_tracked_params(tmp_path, random_mini_clip, min_steps, **tracking)

    return write


def _write_tracked_params(folder: Path, backbone: Path, min_steps: int = 3, **tracking: Any) -> Path:
    params = tiny_params(
        backbone,
        plan={"sampler": {"name": "progressive", "params": {"rounds": 1, "replicas": 2}}},
        train=tiny_training(min_steps, augment={"crop_scale": [0.5, 1.0]}, resume_every=2),
        retrain_head=tiny_training(min_steps, augment={"enabled": False}, resume_every=2),
        tracking={"experiment": "tiny", **tracking},
        workdir=str(folder / "outputs"),
    )
    return write_params(folder, params)


@dataclass(frozen=True)
class ServedRun:
    """A finished `ltsoups run` (members SERVED_MEMBERS) logged to the session's `mlflow server`."""

    uri: str
    experiment: str
    output: str
    """what `ltsoups run` printed"""
    folder: Path
    """params.yaml and outputs/; its final model is version 1 of registered model SERVED_MODEL"""


@pytest.fixture(scope="session")
def served_run(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path, mlflow_server: str) -> ServedRun:
    """One tiny run for every test that reads a run tree from a server (tests must not log to its experiment)."""
    folder = tmp_path_factory.mktemp("served-run")
    params = _write_tracked_params(
        folder, random_mini_clip, uri=mlflow_server, experiment="tiny-served", register=SERVED_MODEL
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")  # MLflow's switch, as a user would set it
        patch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")  # a sample even from trainings of a second
        result = CliRunner().invoke(app, ["run", "--params", str(params)])
    assert result.exit_code == 0, result.output
    return ServedRun(mlflow_server, "tiny-served", result.output, folder)


class RunTree:
    """The runs of one experiment read back with MlflowClient: parents, and their children by kind."""

    def __init__(self, experiment: str, uri: str | None = None) -> None:
        """``uri`` None: the default store, mlflow.db in the working directory."""
        from mlflow import MlflowClient

        uri = uri or f"sqlite:///{Path('mlflow.db').resolve()}"
        self.client = MlflowClient(uri)
        found = self.client.get_experiment_by_name(experiment)
        assert found is not None, f"no experiment {experiment!r} at {uri}"
        self.experiment = found
        self.runs = self.client.search_runs([found.experiment_id], max_results=1000)

    @property
    def parents(self) -> list:
        return [run for run in self.runs if run.data.tags.get("kind") == "pipeline"]

    def children(self, parent_id: str, kind: str | None = None) -> list:
        return [
            run
            for run in self.runs
            if run.data.tags.get("mlflow.parentRunId") == parent_id and kind in (None, run.data.tags.get("kind"))
        ]

    def steps(self, run_id: str, key: str) -> list[int]:
        return sorted(metric.step for metric in self.client.get_metric_history(run_id, key))

    def artifacts(self, run_id: str, folder: str | None = None) -> set[str]:
        return {item.path for item in self.client.list_artifacts(run_id, folder)}


def assert_complete_tree(tree: RunTree, members: list[str], factors: list[int]) -> None:
    """One finished parent with a finished run per member, running soup, CR and evaluation, each with its data."""
    (parent,) = tree.parents
    assert parent.info.status == "FINISHED"
    assert {"code_version", "config_hash"} <= set(parent.data.tags)
    assert parent.data.params["merge.merger.params.lambda"] == "0.7"
    assert parent.data.metrics["final/balanced"] >= 0
    # What MLflow 3's runs table shows without configuring columns, in its model-training view.
    final = {
        key.removeprefix("final/"): value for key, value in parent.data.metrics.items() if key.startswith("final/")
    }
    assert {"overall", "balanced", "few", "temperature", "weight_change"} <= set(final)  # no many-shot class here
    accuracies = {key: value for key, value in final.items() if key in ("overall", "balanced", "many", "medium", "few")}
    assert all(parent.data.metrics[key] == value for key, value in accuracies.items())  # also unprefixed
    assert "temperature" not in parent.data.metrics
    assert tree.experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    children = tree.children(parent.info.run_id)
    assert len(children) == len(members) + len(factors) + 2, [run.info.run_name for run in children]
    assert all(run.info.status == "FINISHED" for run in children)
    assert all(run.data.tags["config_hash"] == parent.data.tags["config_hash"] for run in children)

    by_member = {run.data.params["member"]: run for run in tree.children(parent.info.run_id, "member")}
    assert sorted(by_member) == sorted(members)
    for member, run in by_member.items():
        params = run.data.params
        assert params["factor"] == member[1 : member.index("-")]
        assert {"replica", "seed", "train_seed", "manifest_sha256", "subset_size", "train.optim.lr"} <= set(params)
        assert run.data.tags["dvc_stage"] == f"train-member@{member}"
        assert tree.steps(run.info.run_id, "loss") == list(range(1, int(run.data.metrics["steps"]) + 1))
        assert tree.steps(run.info.run_id, "lr") == tree.steps(run.info.run_id, "loss")
        assert tree.artifacts(run.info.run_id, "member") == {"member/weights.safetensors.json"}

    soups = tree.children(parent.info.run_id, "soup")
    assert sorted(int(run.data.params["upto_factor"]) for run in soups) == factors
    assert all({"val/overall", "val/balanced"} <= set(run.data.metrics) for run in soups)

    (head,) = tree.children(parent.info.run_id, "retrain-head")
    assert head.data.tags["dvc_stage"] == "retrain-head"
    assert len(tree.steps(head.info.run_id, "loss")) == head.data.metrics["steps"]

    (evaluation,) = tree.children(parent.info.run_id, "evaluation")
    for model in ("zero_shot", "stage1", "final"):
        assert {f"{model}/overall", f"{model}/balanced", f"{model}/few"} <= set(evaluation.data.metrics)
    assert {"per_class.json", "metrics.json", "groups.json"} <= tree.artifacts(evaluation.info.run_id)


@pytest.fixture
def run_tree() -> Callable[..., RunTree]:
    return RunTree


@pytest.fixture
def complete_tree() -> Callable[[RunTree, list[str], list[int]], None]:
    return assert_complete_tree
