"""A method that chooses its merge on validation shows what the search cost in the comparison's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltsoups.compare.report import build_report, comparison_markdown
from ltsoups.compare.results import ComparisonSpec, MethodEntry, MethodResult
from ltsoups.data.stats import ShotThresholds
from ltsoups.merge_search import SearchCost
from ltsoups.predictions import Predictions
from ltsoups.training.cost import TrainingCost

LABELS = np.repeat(np.arange(3), 4)


def _result(root: Path, method: str, seed: int, search: SearchCost | None) -> None:
    folder = root / "runs" / method / f"seed-{seed}"
    logits = np.random.default_rng(seed).normal(size=(len(LABELS), 3)).astype(np.float32)
    for split in ("test", "val"):
        Predictions(logits, LABELS).write(folder / f"{split}.safetensors")
    MethodResult(
        method=method,
        seed=seed,
        model="stage 1 + CR",
        predictions={split: f"runs/{method}/seed-{seed}/{split}.safetensors" for split in ("test", "val")},
        weights_sha256="0" * 64,
        scores={},
        calibration={},
        weight_change=None,
        cost=TrainingCost(trainings=6, steps=18, samples=288, seconds=1.0),
        search_cost=search,
        members=6,
        models_at_inference=1,
        config_sha256="0" * 64,
        code_version="test",
    ).write(folder / "result.json")


def test_the_search_cost_is_summarised_over_seeds_and_shown_beside_the_training_cost(tmp_path: Path) -> None:
    methods = ("lt-soups", "lt-soups-search")
    spec = ComparisonSpec(
        methods=tuple(MethodEntry(name=name, description=name, settings=()) for name in methods),
        seeds=(0, 1),
        reference="lt-soups",
        dataset="tiny",
        class_names=("a", "b", "c"),
        train_counts=(150, 50, 5),
        class_groups=("many", "medium", "few"),
        base_config={"data": {"thresholds": ShotThresholds().model_dump()}},
        code_version="test",
        members_trained=6,
        members_used=12,
        seconds=2.0,
    )
    (tmp_path / "comparison.json").write_text(spec.model_dump_json())
    for seed, val_passes in ((0, 27), (1, 29)):
        _result(tmp_path, "lt-soups", seed, None)
        _result(
            tmp_path, "lt-soups-search", seed, SearchCost(factor_merges=3, folds=val_passes + 2, val_passes=val_passes)
        )

    report = build_report(tmp_path, resamples=10)
    plain, searched = report.methods
    assert "search_folds" not in plain.cost and "search_val_passes" not in plain.cost
    assert searched.cost["search_val_passes"].values == (27.0, 29.0) and searched.cost["search_folds"].mean == 30.0
    lines = comparison_markdown(report).splitlines()
    assert lines[2].endswith("| search: folds / val passes |")
    assert lines[4].startswith("| lt-soups |") and lines[4].endswith("| - |")
    assert lines[5].startswith("| lt-soups-search |") and lines[5].endswith("| 30 / 28 |")
