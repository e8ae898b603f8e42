"""What a comparison's report reads, written directly: the comparison's spec and one result per method and seed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ltsoups.compare.results import ComparisonSpec, MethodEntry, MethodResult
from ltsoups.data.stats import ShotThresholds
from ltsoups.merge_search import SearchCost
from ltsoups.predictions import Predictions
from ltsoups.training.cost import TrainingCost

LABELS = np.repeat(np.arange(3), 4)


def write_spec(
    root: Path,
    methods: Sequence[str],
    train_counts: tuple[int, int, int] = (150, 50, 5),
    class_groups: tuple[str, str, str] = ("many", "medium", "few"),
) -> None:
    """A comparison of ``methods`` over seeds 0 and 1, the first the reference, on three classes."""
    spec = ComparisonSpec(
        methods=tuple(MethodEntry(name=name, description=name, settings=()) for name in methods),
        seeds=(0, 1),
        reference=methods[0],
        dataset="tiny",
        class_names=("a", "b", "c"),
        train_counts=train_counts,
        class_groups=class_groups,
        base_config={"data": {"thresholds": ShotThresholds().model_dump()}},
        code_version="test",
        members_trained=6,
        members_used=12,
        seconds=2.0,
    )
    (root / "comparison.json").write_text(spec.model_dump_json())


def write_result(root: Path, method: str, seed: int, search: SearchCost | None = None) -> None:
    """``method``'s result at ``seed``: random test and validation logits of the three classes, seeded."""
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
