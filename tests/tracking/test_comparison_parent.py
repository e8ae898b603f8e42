"""The comparison's parent run takes every shipped method's numbers: MLflow names allow no '+' (full-ft+cr)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltsoups.compare.methods import load_methods
from ltsoups.compare.report import BootstrapSettings, ComparisonReport, MethodSummary, PairedRow, Summary
from ltsoups.tracking.comparison import ComparisonTracker, metric_prefix
from ltsoups.tracking.runs import create_run
from ltsoups.tracking.session import TrackingSession


def _report(methods: list[str]) -> ComparisonReport:
    balanced = Summary.of([60.0, 62.0])
    return ComparisonReport(
        reference="lt-soups",
        seeds=(0, 1),
        dataset="tiny",
        test_images=10,
        bootstrap=BootstrapSettings(resamples=10, seed=0, confidence=0.95),
        methods=tuple(
            MethodSummary(
                method=name,
                description=name,
                model="m",
                seeds=(0, 1),
                metrics={"balanced": balanced},
                cost={},
                members=1,
                models_at_inference=1,
            )
            for name in methods
        ),
        paired=tuple(
            PairedRow(
                method=name,
                reference="lt-soups",
                metric="balanced",
                seeds=(0, 1),
                difference=-1.0,
                low=-2.0,
                high=0.0,
                p_value=0.05,
                per_seed=(-1.0, -1.0),
                seed_std=0.0,
                seed_low=-1.0,
                seed_high=-1.0,
            )
            for name in methods
            if name != "lt-soups"
        ),
        members_trained=0,
        members_used=0,
        seconds=1.0,
        code_version="test",
    )


def test_every_shipped_method_lands_on_the_parent_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the sqlite store's artifacts go to ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    session = TrackingSession.connect(uri)
    experiment = session.experiment("comparison")
    assert experiment is not None
    parent = create_run(session, experiment, "comparison", {"kind": "comparison"}, {})
    names = list(load_methods())
    assert "full-ft+cr" in names
    table = tmp_path / "comparison.md"
    table.write_text("| method |\n")
    ComparisonTracker(session, experiment, parent).report_written(_report(names), [table])
    assert session.error is None
    assert parent is not None
    logged = MlflowClient(uri).get_run(parent).data.metrics
    assert "full-ft plus cr/balanced" in logged and "full-ft plus cr/delta_balanced_p" in logged
    assert {f"{metric_prefix(name)}/balanced" for name in names} <= set(logged)
    assert [item.path for item in MlflowClient(uri).list_artifacts(parent, "report")] == ["report/comparison.md"]
