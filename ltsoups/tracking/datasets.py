"""The data a run trained or was evaluated on, as MLflow dataset inputs (the runs table's Dataset column).

Described from the plan, which every stage after `prepare` has: the training split's name, size, class
counts and labels hash (the plan's dataset fingerprint), and for a member the subset it drew.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltsoups.plan import Manifest, Plan

# MLflow stores a dataset digest in at most 36 characters.
_DIGEST = 12


@dataclass(frozen=True)
class DatasetInput:
    """One dataset input of a run; ``context`` says what the run did with it (``mlflow.data.context``)."""

    name: str
    digest: str
    source: Path
    profile: dict[str, Any]
    context: str

    @property
    def source_json(self) -> str:
        return json.dumps({"uri": str(self.source)})


def training_split(plan: Plan, plan_path: Path, context: str) -> DatasetInput:
    """The whole training split the plan was drawn from."""
    dataset = plan.dataset
    profile = {
        "split": "train",
        "size": dataset.size,
        "num_classes": len(plan.class_counts),
        "class_counts": list(plan.class_counts),
        "labels_sha256": dataset.labels_sha256,
    }
    return DatasetInput(dataset.name, dataset.labels_sha256[:_DIGEST], plan_path, profile, context)


def member_subset(manifest: Manifest, manifest_path: Path) -> DatasetInput:
    """The subset one member trains on (its manifest)."""
    profile = {
        "split": "train",
        "size": manifest.size,
        "class_counts": list(manifest.class_counts),
        "factor": manifest.factor,
        "cap": manifest.cap,
        "drawn_from": manifest.dataset.name,
        "manifest_sha256": manifest.content_sha256,
    }
    name = f"{manifest.dataset.name} {manifest.member}"
    return DatasetInput(name, manifest.content_sha256[:_DIGEST], manifest_path, profile, "train")
