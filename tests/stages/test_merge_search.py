"""`ltsoups merge --search` on the tiny configuration: lambda and N chosen on validation, the test split
read only after the choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_config import tiny_params, write_params
from typer.testing import CliRunner

from ltsoups.checkpoint import open_checkpoint
from ltsoups.cli.app import app
from ltsoups.config import load_config
from ltsoups.data.dataset import DatasetSplits, LabelledImages
from ltsoups.evaluation import evaluate
from ltsoups.plugins.datasets import EmbeddedDataset
from ltsoups.stages.context import RunContext

runner = CliRunner()
SEARCHED = ["--set", "merge.search.enabled=true"]


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


class WatchedImages:
    """The test split's images, noting for every read whether the search had already chosen."""

    def __init__(self, source, chosen: Path, reads: list[bool]) -> None:
        self.source, self.chosen, self.reads = source, chosen, reads

    def __len__(self) -> int:
        return len(self.source)

    def image(self, index: int):
        self.reads.append(self.chosen.exists())
        return self.source.image(index)


def watch_the_test_split(monkeypatch: pytest.MonkeyPatch, marker: Path) -> list[bool]:
    """Every read of the embedded test split from now on, as whether ``marker`` existed at the time."""
    reads: list[bool] = []
    load = EmbeddedDataset.load

    def watched(self: EmbeddedDataset) -> DatasetSplits:
        splits = load(self)
        test = splits.test
        watched_test = LabelledImages(WatchedImages(test.source, marker, reads), test.labels, test.class_names)
        return DatasetSplits(splits.name, splits.train, splits.val, watched_test)

    monkeypatch.setattr(EmbeddedDataset, "load", watched)
    return reads


@pytest.mark.slow
def test_merge_search_chooses_on_validation_and_reads_the_test_split_only_after(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs"
    params = write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(outputs)))
    search_file = outputs / "soup" / "search.json"
    test_reads = watch_the_test_split(monkeypatch, search_file)
    p = ["--params", str(params)]
    invoke("prepare", *p)
    invoke("theta0", *p)
    for member in ("f1-r0", "f1-r1", "f2-r0", "f2-r1", "f4-r0", "f4-r1"):
        invoke("train-member", member, *p)

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    output = invoke("merge", "--search", *p, "--set", "tracking.enabled=true", "--set", f"tracking.uri={store}")
    assert test_reads == []  # the merge, search included, never reads the test split
    assert "Soup search: validation balanced accuracy" in output
    search = json.loads(search_file.read_text())
    grid = search["grid"]
    assert sorted({(point["lambda"], point["N"]) for point in grid}) == [
        (lam / 10, n) for lam in range(1, 10) for n in range(3)
    ]
    best = max(grid, key=lambda point: (point["val"]["balanced"], -point["N"], -point["lambda"]))
    assert search["chosen"] == best
    soup = open_checkpoint(outputs / "soup" / "soup.safetensors", "soup")
    assert soup.sidecar.search.chosen == best and soup.sidecar.upto_factor == best["upto_factor"]
    assert (outputs / "soup" / "search.png").stat().st_size > 0
    for factor in (1, 2):  # the running soups are those of the chosen lambda
        running = open_checkpoint(outputs / "soup" / "running" / f"upto-f{factor}.safetensors", "soup")
        assert running.sidecar.search.chosen["lambda"] == best["lambda"]

    # The grid in MLflow: one series per N over lambda (step: lambda in thousandths), the table and the figure.
    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("ltsoups").experiment_id])
    (searched,) = [run for run in runs if run.info.run_name == "soup search"]
    for n in range(3):
        history = client.get_metric_history(searched.info.run_id, f"search_val_balanced_N{n}")
        assert sorted(point.step for point in history) == list(range(100, 1000, 100))
    artifacts = {item.path for item in client.list_artifacts(searched.info.run_id, "search")}
    assert artifacts == {"search/search.json", "search/search.png"}
    (parent,) = [run for run in runs if run.data.tags.get("kind") == "pipeline"]
    assert parent.data.metrics["search_lambda"] == best["lambda"] and parent.data.metrics["search_N"] == best["N"]

    # The soup written is the soup scored: its validation accuracy is the grid's.
    context = RunContext(load_config(params, SEARCHED[1:]))
    model = context.classifier_from(soup)
    val = evaluate(
        model,
        context.evaluation_inputs("val"),
        context.train_counts,
        context.config.data.thresholds,
    )
    assert val.headline() == pytest.approx(best["val"])

    refused = invoke("retrain-head", *p, code=1)  # the later stages need the same setting
    assert "chosen by `merge --search`: set merge.search.enabled: true" in refused
    invoke("retrain-head", *p, *SEARCHED)
    assert test_reads == []
    invoke("evaluate", *p, *SEARCHED)
    assert test_reads and all(test_reads)  # the test split is read, and only after the choice was recorded

    # A plain merge that fails keeps the search it would have replaced; one that succeeds removes it.
    import ltsoups.stages.merge as merge_stage

    def failing(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(merge_stage, "_merge", failing)
        assert "disk full" in invoke("merge", *p, code=1)
    assert search_file.is_file() and (outputs / "soup" / "search.png").is_file()
    invoke("merge", *p)
    assert not search_file.exists() and not (outputs / "soup" / "search.png").exists()


@pytest.mark.slow
def test_per_factor_search_writes_the_soups_it_scored_and_reads_no_test_image(
    tmp_path: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from safetensors.torch import load_file

    from ltsoups.workspace import Workspace

    root = tmp_path / "run"
    shutil.copytree(finished_run, root)
    outputs = root / "outputs"
    workspace = Workspace(outputs)
    test_reads = watch_the_test_split(monkeypatch, root / "never")
    settings = ["merge.search.enabled=true", "merge.search.mode=per-factor", "merge.search.lambdas=[0.3, 0.7]"]
    per_factor = [arg for setting in [*settings, "merge.search.sweeps=3"] for arg in ("--set", setting)]
    p = ["--params", str(root / "params.yaml"), "--set", f"workdir={outputs}"]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    output = invoke("merge", *p, *per_factor, "--set", "tracking.enabled=true", "--set", f"tracking.uri={store}")
    assert test_reads == []  # the search scores soups on the validation split only
    search = json.loads(workspace.soup_search.read_text())
    assert (search["mode"], search["metric"]) == ("per-factor", "balanced")
    lambdas, chosen = search["lambdas"], search["chosen"]
    assert len(lambdas) == 3 and chosen["lambdas"] == lambdas[: chosen["N"] + 1]
    assert chosen["keep_previous"] == chosen["lambdas"]  # the default merger weighs the previous merge
    steps = search["ascent"]
    assert [(step["sweep"], step["factor"]) for step in steps[:3]] == [(1, 1), (1, 2), (1, 4)]
    assert [step["picked"] for step in steps[-3:]] == lambdas
    scored = {tuple(point["lambdas"]): point for point in search["scored"]}
    assert len(scored) == len(search["scored"]) == search["cost"]["val_passes"] >= 6
    running = [scored[tuple(lambdas[: n + 1])] for n in range(3)]
    assert chosen == max(running, key=lambda point: (point["val"]["balanced"], -point["N"]))
    assert "chosen on validation: lambda per factor" in output and "validation passes" in output

    soup = open_checkpoint(workspace.soup, "soup")
    record = soup.sidecar.search
    assert record is not None and (record.mode, record.lambdas, record.chosen) == ("per-factor", lambdas, chosen)
    assert record.cost == search["cost"] and soup.sidecar.upto_factor == chosen["upto_factor"]
    metrics = json.loads(workspace.soup_metrics.read_text())["search"]
    assert metrics == {**chosen, "cost": search["cost"]}

    # In MLflow: one series per step of the ascent over lambda, the lambda of every factor and the cost.
    from mlflow import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("ltsoups").experiment_id])
    (searched,) = [run for run in runs if run.info.run_name == "soup search"]
    for step in steps:
        history = client.get_metric_history(
            searched.info.run_id, f"search_val_balanced_s{step['sweep']}_f{step['factor']}"
        )
        assert sorted((point.step, point.value) for point in history) == [
            (round(tried["lambda"] * 1000), tried["score"]) for tried in step["tried"]
        ]
    (parent,) = [run for run in runs if run.data.tags.get("kind") == "pipeline"]
    logged = {key: parent.data.metrics[f"search_{key}"] for key in ("lambda_f1", "lambda_f2", "lambda_f4", "N")}
    assert logged == {"lambda_f1": lambdas[0], "lambda_f2": lambdas[1], "lambda_f4": lambdas[2], "N": chosen["N"]}
    assert parent.data.metrics["search_val_passes"] == search["cost"]["val_passes"]

    # The soup written is the recursion by hand with the lambdas chosen, bit for bit, from the members' files.
    tensors = load_file(str(workspace.theta0))
    hand = dict(tensors)
    for lam, factor in zip(chosen["lambdas"], (1, 2, 4), strict=False):
        members = [load_file(str(workspace.member(f"f{factor}-r{replica}"))) for replica in (0, 1)]
        for name, value in tensors.items():
            if value.is_floating_point():
                mean = torch.zeros(value.shape, dtype=torch.float64)
                for member in members:
                    mean.add_(member[name])
                mean.div_(len(members))
                hand[name] = hand[name].to(torch.float64, copy=True).mul_(lam).add_(mean, alpha=1 - lam).to(value.dtype)
    written = load_file(str(workspace.soup))
    assert written.keys() == hand.keys() and all(torch.equal(written[name], hand[name]) for name in hand)

    # ... and it scores what the search scored for it.
    context = RunContext(load_config(root / "params.yaml", [f"workdir={outputs}", *settings, "merge.search.sweeps=3"]))
    val = evaluate(
        context.classifier_from(soup),
        context.evaluation_inputs("val"),
        context.train_counts,
        context.config.data.thresholds,
    )
    assert val.headline() == pytest.approx(chosen["val"])
    assert test_reads == []
