"""`ltsoups merge --search` on the tiny configuration: lambda and N chosen on validation, the test split
read only after the choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_merge_search_chooses_on_validation_and_reads_the_test_split_only_after(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "outputs"
    params = write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(outputs)))
    search_file = outputs / "soup" / "search.json"
    test_reads: list[bool] = []
    load = EmbeddedDataset.load

    def watched(self: EmbeddedDataset) -> DatasetSplits:
        splits = load(self)
        test = splits.test
        watched_test = LabelledImages(
            WatchedImages(test.source, search_file, test_reads), test.labels, test.class_names
        )
        return DatasetSplits(splits.name, splits.train, splits.val, watched_test)

    monkeypatch.setattr(EmbeddedDataset, "load", watched)
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
        context.splits.val,
        context.preprocess,
        context.runtime,
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
