"""The real `dvc` on dvc.yaml: what each change reruns, metrics and plots, and the MLflow runs of the stages.

The tests share one repository (a full `dvc repro` is the expensive part) and run in file order:
each starts from the state the previous one left.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from dvc_repo import BIN, DvcRepo
from offline_page import render_offline
from tiny_config import ONE_ROUND_MEMBERS, TINY_DATA

pytestmark = pytest.mark.slow

NEW_MEMBERS = ["f4-r0", "f4-r1"]
AFTER_MEMBERS = ["merge", "retrain-head", "evaluate"]


def digests(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob(pattern))}


def test_first_repro_runs_every_stage(dvc_repo: DvcRepo) -> None:
    ran = dvc_repo.repro("repro")
    assert sorted(ran) == sorted(
        ["data", "prepare", "theta0", *[f"train-member@{m}" for m in ONE_ROUND_MEMBERS], *AFTER_MEMBERS]
    )


def tracked_runs(dvc_repo: DvcRepo) -> list:
    """The runs the stages logged to the default store, mlflow.db in the repository, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{dvc_repo.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ltsoups")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_stages_of_one_execution_log_under_one_parent(dvc_repo: DvcRepo) -> None:
    runs = tracked_runs(dvc_repo)
    (parent,) = [run for run in runs if run.data.tags["kind"] == "pipeline"]
    assert parent.info.status == "FINISHED"
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    stages = sorted((run.data.tags["kind"], run.data.tags["dvc_stage"]) for run in children)
    assert stages == sorted(
        [("member", f"train-member@{m}") for m in ONE_ROUND_MEMBERS]
        + [("soup", "merge")] * 2
        + [("retrain-head", "retrain-head"), ("evaluation", "evaluate")]
    )
    for run in children:
        assert run.info.status == "FINISHED"
        if run.data.tags["kind"] == "member":
            assert {"loss", "lr", "steps"} <= set(run.data.metrics)
            assert run.data.params["manifest_sha256"]
        if run.data.tags["kind"] == "evaluation":
            assert {"final/balanced", "stage1/balanced", "zero_shot/few"} <= set(run.data.metrics)


def test_second_repro_runs_nothing_but_the_data_check(dvc_repo: DvcRepo) -> None:
    assert json.loads(dvc_repo.dvc("status", "--json").stdout) == {"data": ["always changed"]}
    assert dvc_repo.repro("repro") == ["data"]


def test_metrics_and_plots(dvc_repo: DvcRepo) -> None:
    metrics = json.loads(dvc_repo.dvc("metrics", "show", "--json").stdout)
    (workspace,) = metrics.values()
    files = workspace["data"]
    headline = files["outputs/eval/metrics.json"]["data"]
    for model in ("zero_shot", "stage1", "final"):
        assert {"overall", "balanced", "medium", "few"} <= set(headline[model])
    assert set(files["outputs/soup/val_metrics.json"]["data"]) == {"f1", "f2"}
    dvc_repo.dvc("plots", "show", "-o", "plots")
    page = (dvc_repo.root / "plots" / "index.html").read_text()
    plots = yaml.safe_load((dvc_repo.root / "dvc.yaml").read_text())["plots"]
    titles = [definition["title"] for plot in plots for definition in plot.values()]
    assert all(title in page for title in titles)
    assert '"train_count": 40' in page and '"group": "few"' in page
    assert "cdn.jsdelivr.net" not in page  # Vega is inlined (.dvc/offline_plots.html)


def test_plots_render_with_no_network(dvc_repo: DvcRepo, tmp_path: Path) -> None:
    rendered = render_offline(dvc_repo.root / "plots" / "index.html", tmp_path / "plots.png", charts=2)
    assert (rendered.charts, rendered.refused) == (2, [])
    assert rendered.inked > 0.005  # axes, points and bars drawn (a page whose Vega did not load is white)


def test_lambda_sweep_reruns_merge_and_later_stages_only(dvc_repo: DvcRepo) -> None:
    members = digests(dvc_repo.root, "outputs/members/*/weights.safetensors")
    ran = dvc_repo.repro("exp", "run", "-S", "merge.merger.params.lambda=0.5")
    assert ran == ["data", *AFTER_MEMBERS]
    assert digests(dvc_repo.root, "outputs/members/*/weights.safetensors") == members
    assert dvc_repo.params()["merge"]["merger"]["params"]["lambda"] == 0.5
    runs = tracked_runs(dvc_repo)
    parent = [run for run in runs if run.data.tags["kind"] == "pipeline"][-1]  # this execution's own parent
    assert parent.info.status == "FINISHED" and parent.data.tags["dvc_exp_name"]
    assert parent.data.params["merge.merger.params.lambda"] == "0.5"
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(run.data.tags["kind"] for run in children) == ["evaluation", "retrain-head", "soup", "soup"]


def metrics_of(row: dict) -> dict[str, dict]:
    return {path: entry.get("data") for path, entry in row["data"]["metrics"].items()}


def test_experiments_show_their_metrics_and_plots(dvc_repo: DvcRepo) -> None:
    assert dvc_repo.repro("exp", "run", "-S", "merge.merger.params.lambda=0.7") == ["data", *AFTER_MEMBERS]
    shown = json.loads(dvc_repo.dvc("exp", "show", "--json").stdout)
    metrics = {"workspace": metrics_of(shown[0])}
    for baseline in shown[1:]:
        metrics |= {rev["name"]: metrics_of(rev) for exp in baseline.get("experiments") or [] for rev in exp["revs"]}
    experiments = [name for name in metrics if name != "workspace"]
    assert len(experiments) == 2  # lambda 0.5 and 0.7
    for name in [*experiments, "workspace"]:
        assert isinstance(metrics[name]["outputs/eval/metrics.json"]["final"]["balanced"], float), name
        assert set(metrics[name]["outputs/soup/val_metrics.json"]) == {"f1", "f2"}, name
    diff = json.loads(dvc_repo.dvc("metrics", "diff", *experiments, "--all", "--json").stdout)
    assert isinstance(diff["outputs/eval/metrics.json"]["final.balanced"]["new"], float)
    dvc_repo.dvc("plots", "diff", *experiments, "-o", "plots-diff")
    page = (dvc_repo.root / "plots-diff" / "index.html").read_text()
    assert all(f'"rev": "{name}"' in page for name in experiments) and '"group": "few"' in page


def test_raising_n_trains_only_the_new_factor(dvc_repo: DvcRepo) -> None:
    manifests = digests(dvc_repo.root, "outputs/plan/manifests/*.json")
    members = digests(dvc_repo.root, "outputs/members/*/weights.safetensors")
    params = dvc_repo.params()
    params["plan"]["sampler"]["params"]["rounds"] = 2
    params["members"] += NEW_MEMBERS
    dvc_repo.write_params(params)
    ran = dvc_repo.repro("repro")
    assert sorted(ran) == sorted(["data", "prepare", *[f"train-member@{m}" for m in NEW_MEMBERS], *AFTER_MEMBERS])
    after = digests(dvc_repo.root, "outputs/plan/manifests/*.json")
    assert {path: after[path] for path in manifests} == manifests  # old members' manifests byte-identical
    assert len(after) == len(manifests) + len(NEW_MEMBERS)
    after_members = digests(dvc_repo.root, "outputs/members/*/weights.safetensors")
    assert {path: after_members[path] for path in members} == members


def test_a_clone_pulls_the_outputs_from_a_remote_and_trains_nothing(dvc_repo: DvcRepo, tmp_path: Path) -> None:
    """docs/mlops.md's "Sharing the outputs through a DVC remote", with a folder as the remote."""
    from ltsoups.registry import PluginKind, installed_registry

    dvc_repo.repro("repro")  # up to date (alone, this test runs the pipeline first)
    dvc_repo.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    dvc_repo.run("git", "add", "-A")
    dvc_repo.run("git", "commit", "-q", "-m", "results, shared through a remote")
    dvc_repo.dvc("push")
    clone = DvcRepo(tmp_path / "clone")
    dvc_repo.run("git", "clone", "-q", str(dvc_repo.root), str(clone.root))
    clone.dvc("pull")
    for pattern in ("outputs/members/*/weights.safetensors", "outputs/soup/soup.safetensors*", "outputs/final/final.*"):
        assert digests(clone.root, pattern) == digests(dvc_repo.root, pattern) != {}
    assert clone.repro("repro") == ["data"]

    images = tmp_path / "images"
    images.mkdir()
    test = installed_registry().create(PluginKind.DATASET, "embedded", TINY_DATA).load().test
    for index in range(8):
        test.source.image(index).save(images / f"{index}.png")
    for repo in (dvc_repo, clone):
        repo.run(str(BIN / "ltsoups"), "predict", str(images), "-k", "3", "--out", "predictions.jsonl")
    predicted = (clone.root / "predictions.jsonl").read_text()
    assert predicted == (dvc_repo.root / "predictions.jsonl").read_text() and len(predicted.splitlines()) == 8
