"""Stage `evaluate`: test accuracy of theta_0, each running soup, stage 1 and stage 1 + CR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltsoups.checkpoint import Checkpoint, open_checkpoint
from ltsoups.data.stats import ClassStats
from ltsoups.evaluation import Scores, evaluate
from ltsoups.io.atomic import write_json_atomic
from ltsoups.plan import Plan
from ltsoups.provenance import code_version
from ltsoups.schema import StrictModel
from ltsoups.stages.context import RunContext
from ltsoups.stages.inputs import verified_final, verified_soup, verified_theta0
from ltsoups.stages.sections import HEAD_SECTIONS
from ltsoups.workspace import Workspace

ZERO_SHOT, STAGE1, FINAL = "theta0 (zero-shot)", "stage 1 (soup)", "stage 1 + CR"


@dataclass(frozen=True)
class ResultRow:
    """One scored model: its name in the results table, its weights and its test scores."""

    name: str
    checkpoint: Checkpoint
    scores: Scores


@dataclass(frozen=True)
class Evaluation:
    """Every model of a run scored on the test split, and the training counts that define its shot groups."""

    rows: list[ResultRow]
    class_names: tuple[str, ...]
    train_counts: np.ndarray
    stats: ClassStats

    def scores(self, name: str) -> Scores:
        return next(row.scores for row in self.rows if row.name == name)

    @property
    def final(self) -> Scores:
        """The run's final model: stage 1 + CR, or stage 1 when CR is off."""
        names = {row.name for row in self.rows}
        return self.scores(FINAL if FINAL in names else STAGE1)

    def metrics(self) -> dict[str, dict[str, float]]:
        """The headline scores of zero-shot, stage 1 and the final model (DVC's metrics file)."""
        return {
            "zero_shot": self.scores(ZERO_SHOT).headline(),
            "stage1": self.scores(STAGE1).headline(),
            "final": self.final.headline(),
        }

    def per_class(self) -> list[dict[str, Any]]:
        """One row per class: its training count, shot group and accuracy under each headline model."""
        zero_shot, stage1, final, groups = self.scores(ZERO_SHOT), self.scores(STAGE1), self.final, self.stats.groups()
        return [
            {
                "class": name,
                "train_count": int(self.train_counts[c]),
                "group": groups[c].value,
                "zero_shot": zero_shot.per_class[c],
                "stage1": stage1.per_class[c],
                "final": final.per_class[c],
            }
            for c, name in enumerate(self.class_names)
        ]

    def shot_groups(self) -> list[dict[str, Any]]:
        """Accuracy of every model on many / medium / few classes (DVC's bar plot)."""
        return [
            {"model": row.name, "group": group, "accuracy": value}
            for row in self.rows
            for group, value in row.scores.headline().items()
            if group in ("many", "medium", "few")
        ]


class ResultEntry(StrictModel):
    model: str
    scores: dict[str, float]
    weights_sha256: str


class Results(StrictModel):
    """``eval/results.json``: the results table, what each row scored, and what produced it."""

    rows: tuple[ResultEntry, ...]
    config_sha256: str
    code_version: str

    @classmethod
    def read(cls, workspace: Workspace) -> Results:
        return cls.model_validate_json(workspace.results.read_text())


def evaluate_all(context: RunContext, workspace: Workspace) -> Evaluation:
    """Score every model of the run on the test split and write metrics, per-class and group files."""
    config = context.config
    plan = Plan.read(workspace.plan)
    models = [(ZERO_SHOT, verified_theta0(config, workspace))]
    models += [
        (f"soup up to 2^{f.bit_length() - 1}", open_checkpoint(workspace.running_soup(f))) for f in _prefixes(plan)
    ]
    soup = verified_soup(config, workspace)
    models.append((STAGE1, soup))
    final = verified_final(config, workspace, soup)
    if final.sidecar.get("retrained", True):
        models.append((FINAL, final))
    rows = [ResultRow(name, checkpoint, _test_scores(context, checkpoint)) for name, checkpoint in models]
    splits = context.splits
    evaluation = Evaluation(
        rows, splits.train.class_names, context.train_counts, ClassStats(context.train_counts, config.data.thresholds)
    )
    _write(evaluation, context, workspace)
    return evaluation


def _prefixes(plan: Plan) -> list[int]:
    """The factors after which a running soup was written: all but the last."""
    return [row.factor for row in plan.factors][:-1]


def _test_scores(context: RunContext, checkpoint: Checkpoint) -> Scores:
    model = context.classifier_from(checkpoint)
    splits, thresholds = context.splits, context.config.data.thresholds
    return evaluate(model, splits.test, context.preprocess, context.runtime, context.train_counts, thresholds)


def _write(evaluation: Evaluation, context: RunContext, workspace: Workspace) -> None:
    results = Results(
        rows=tuple(
            ResultEntry(
                model=row.name, scores=row.scores.headline(), weights_sha256=row.checkpoint.sidecar["weights_sha256"]
            )
            for row in evaluation.rows
        ),
        config_sha256=context.config.section_hash(*HEAD_SECTIONS, "evaluation"),
        code_version=code_version(),
    )
    write_json_atomic(workspace.results, results.model_dump(mode="json"))
    write_json_atomic(workspace.metrics, evaluation.metrics())
    write_json_atomic(workspace.per_class, evaluation.per_class())
    write_json_atomic(workspace.groups, evaluation.shot_groups())
