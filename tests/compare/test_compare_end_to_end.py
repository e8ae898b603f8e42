"""`ltsoups compare` on the tiny config, 2 methods x 2 seeds: shared members, report files, plots, MLflow runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_comparison import EXPERIMENT, METHODS, SEEDS, TinyComparison, run_cli
from tiny_config import TINY_MEMBERS
from typer.testing import CliRunner

from ltsoups.checkpoint import open_checkpoint
from ltsoups.cli.app import app
from ltsoups.compare.results import ComparisonSpec, MethodResult
from ltsoups.config import load_config
from ltsoups.predictions import Predictions, Split
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import ModelPredictor, Results
from ltsoups.workspace import Workspace

PNG = b"\x89PNG\r\n\x1a\n"


def run_folder(root: Path, method: str, seed: int) -> Path:
    return root / "runs" / method / f"seed-{seed}"


@pytest.mark.slow
def test_members_identical_across_methods_are_trained_once_and_shared(comparison: TinyComparison) -> None:
    spec = ComparisonSpec.read(comparison.root)
    assert (spec.members_trained, spec.members_used) == (len(TINY_MEMBERS) * 2, len(TINY_MEMBERS) * 2 * 2)
    for seed in SEEDS:
        for member in TINY_MEMBERS:
            files = [Workspace(run_folder(comparison.root, m, seed)).member(member) for m in METHODS]
            assert os.path.samefile(*files), f"{member} at seed {seed} is not one shared file"
    first, second = (Workspace(run_folder(comparison.root, "lt-soups", s)).member("f4-r1") for s in SEEDS)
    assert first.read_bytes() != second.read_bytes()  # the seed drives the members
    for method in METHODS:
        for seed in SEEDS:
            result = MethodResult.read(run_folder(comparison.root, method, seed) / "result.json")
            assert result.model == "stage 1 + CR"
            assert result.cost.trainings == len(TINY_MEMBERS) + 1  # its members, shared or not, and CR
            assert result.cost.steps > 0 and result.cost.samples > 0 and result.cost.seconds > 0
            evaluated = Results.read(Workspace(run_folder(comparison.root, method, seed)))
            assert [row.key for row in evaluated.rows] == ["zero_shot", "stage1", "final"]
    soups = [Results.read(Workspace(run_folder(comparison.root, m, 0))).entry("stage1").weights_sha256 for m in METHODS]
    assert soups[0] != soups[1]  # recursive and uniform merges of the same members


@pytest.mark.slow
def test_the_report_is_printed_and_written(comparison: TinyComparison) -> None:
    assert "Test accuracy (%), mean ± std over 2 seeds" in comparison.output
    assert "lt-soups-uniform" in comparison.output
    report = json.loads((comparison.root / "report" / "summary.json").read_text())
    assert [m["method"] for m in report["methods"]] == list(METHODS)
    paired = {("lt-soups-uniform", m) for m in ("balanced", "few", "tail")}  # the tiny world has no head class
    assert {(p["method"], p["metric"]) for p in report["paired"]} == paired
    metrics = json.loads((comparison.root / "report" / "metrics.json").read_text())
    assert set(metrics) == set(METHODS) and {"balanced", "few", "nll", "ece", "brier"} <= set(metrics["lt-soups"])
    lines = (comparison.root / "report" / "summary.csv").read_text().splitlines()
    assert lines[0] == "method,metric,mean,std,low,high,seeds" and any(",balanced," in line for line in lines)
    markdown = (comparison.root / "report" / "comparison.md").read_text()
    assert "| lt-soups-uniform |" in markdown
    for table in markdown.split("\n\n")[1:]:  # every row of each table has its header's columns
        header, *rows = [line for line in table.splitlines() if line.startswith("|")]
        assert rows and all(row.count("|") == header.count("|") for row in rows), table
    for plot in ("tradeoff.png", "groups.png"):
        assert (comparison.root / "report" / plot).read_bytes().startswith(PNG)
    again = run_cli(
        "compare", "report", "--out", str(comparison.root), "--resamples", "300", "-p", str(comparison.params)
    )
    assert "lt-soups-uniform" in again
    assert json.loads((comparison.root / "report" / "summary.json").read_text()) == report  # same seed, same numbers


@pytest.mark.slow
def test_mlflow_has_one_parent_and_a_child_per_method_and_seed(comparison: TinyComparison) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(comparison.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    (parent,) = [run for run in runs if run.data.tags.get("kind") == "comparison"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["compare.methods"] == ", ".join(METHODS)
    assert {"lt-soups/balanced", "lt-soups-uniform/delta_balanced", "lt-soups-uniform/delta_few_p"} <= set(
        parent.data.metrics
    )
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted((run.data.tags["method"], run.data.tags["seed"]) for run in children) == sorted(
        (m, str(s)) for m in METHODS for s in SEEDS
    )
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"balanced", "few", "nll", "ece", "brier", "temperature", "weight_change", "cost/steps"} <= set(
            child.data.metrics
        )
        assert child.data.params["seed"] == child.data.tags["seed"]
    report_files = {item.path for item in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/summary.json", "report/comparison.md", "report/tradeoff.png", "report/groups.png"} <= report_files


@pytest.mark.slow
def test_a_later_comparison_reuses_stored_members_and_ensembles_their_logits(
    comparison: TinyComparison, tmp_path: Path
) -> None:
    root = tmp_path / "again"
    shutil.copytree(comparison.root, root, copy_function=os.link)
    run_cli(
        "compare", "-m", "lt-soups", "-m", "ensemble", "--seeds", "2", "--resamples", "50",
        "--out", str(root), "-p", str(comparison.params), "--set", "tracking.enabled=false",
    )  # fmt: skip
    spec = ComparisonSpec.read(root)
    assert spec.members_trained == 0
    result = MethodResult.read(run_folder(root, "ensemble", 1) / "result.json")
    assert (result.models_at_inference, result.weight_change) == (len(TINY_MEMBERS), None)
    workspace = Workspace(run_folder(root, "ensemble", 1))
    config = load_config(comparison.params, ["seed=1", f"workdir={workspace.root}"])
    predict = ModelPredictor(RunContext(config))
    member_logits = [predict(open_checkpoint(workspace.member(m), "member"), Split.TEST) for m in TINY_MEMBERS]
    saved = Predictions.read(root / result.predictions["test"])
    np.testing.assert_allclose(saved.logits, np.mean(member_logits, axis=0), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_altered_logits_are_refused_by_name(comparison: TinyComparison, tmp_path: Path) -> None:
    root = tmp_path / "altered"
    shutil.copytree(comparison.root, root)
    result = MethodResult.read(run_folder(root, "lt-soups-uniform", 1) / "result.json")
    path = root / result.predictions["test"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # one bit of one logit
    path.write_bytes(bytes(data))
    before = (root / "report" / "summary.json").read_bytes()
    refused = CliRunner().invoke(app, ["compare", "report", "--out", str(root), "-p", str(comparison.params)])
    assert refused.exit_code == 1
    assert f"{path}: sha256" in " ".join(refused.output.split()) and "does not match its sidecar" in refused.output
    assert (root / "report" / "summary.json").read_bytes() == before
