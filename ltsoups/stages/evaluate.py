"""Stage `evaluate`: theta_0, each running soup, stage 1 and stage 1 + CR on the test split.

Per model: accuracy (overall, balanced, many / medium / few), calibration after a temperature fitted
on the validation split, and the image encoder's distance from theta_0. The logits behind these
numbers are saved (``SavedLogits``), so that each can be recomputed without the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltsoups.analysis.calibration import Calibration, calibrate
from ltsoups.analysis.weight_change import WeightChange, weight_change
from ltsoups.checkpoint import Checkpoint, sidecar_path
from ltsoups.data.stats import ClassStats
from ltsoups.evaluation import Scores, score_predictions
from ltsoups.io.atomic import write_json_atomic
from ltsoups.plan import factor_label
from ltsoups.predictions import Predictions, Predictor, Split, prediction_config_sha256
from ltsoups.provenance import code_version
from ltsoups.schema import StrictModel
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate_options import EvaluateOptions, SavedLogits
from ltsoups.stages.inputs import Link, verified_chain
from ltsoups.stages.sections import HEAD_SECTIONS, head_config_sha256
from ltsoups.workspace import Workspace

ZERO_SHOT, STAGE1, FINAL = "theta0 (zero-shot)", "stage 1 (soup)", "stage 1 + CR"
ZERO_SHOT_KEY, STAGE1_KEY, FINAL_KEY = "zero_shot", "stage1", "final"


class ModelPredictor:
    """Logits computed by the run's classifier, on the run's device."""

    def __init__(self, context: RunContext) -> None:
        self.context = context

    def __call__(self, checkpoint: Checkpoint, split: Split) -> np.ndarray:
        return self.context.checkpoint_logits(checkpoint, split.value)


@dataclass(frozen=True)
class ResultRow:
    """One evaluated model: its name in the results table, its weights, its test scores and analyses."""

    key: str
    name: str
    checkpoint: Checkpoint
    scores: Scores
    calibration: Calibration
    weight_change: WeightChange
    predictions: dict[str, str] | None
    """split -> the saved logits, relative to the workdir; None when not saved"""

    def analyses(self) -> dict[str, float]:
        return {**self.calibration.as_dict(), **self.weight_change.as_dict()}


@dataclass(frozen=True)
class Evaluation:
    """Every model of a run scored on the test split, and the training counts that define its shot groups."""

    rows: list[ResultRow]
    class_names: tuple[str, ...]
    train_counts: np.ndarray
    stats: ClassStats

    def row(self, key: str) -> ResultRow:
        return next(row for row in self.rows if row.key == key)

    def scores(self, key: str) -> Scores:
        return self.row(key).scores

    @property
    def final_row(self) -> ResultRow:
        """The run's final model: stage 1 + CR, or stage 1 when CR is off."""
        keys = {row.key for row in self.rows}
        return self.row(FINAL_KEY if FINAL_KEY in keys else STAGE1_KEY)

    @property
    def final(self) -> Scores:
        return self.final_row.scores

    def metrics(self) -> dict[str, dict[str, float]]:
        """Scores, calibration and weight change of zero-shot, stage 1 and the final model (DVC's metrics file)."""
        chosen = {ZERO_SHOT_KEY: self.row(ZERO_SHOT_KEY), STAGE1_KEY: self.row(STAGE1_KEY), FINAL_KEY: self.final_row}
        return {key: {**row.scores.headline(), **row.analyses()} for key, row in chosen.items()}

    def per_class(self) -> list[dict[str, Any]]:
        """One row per class: its training count, shot group and accuracy under each headline model."""
        zero_shot, stage1 = self.scores(ZERO_SHOT_KEY), self.scores(STAGE1_KEY)
        final, groups = self.final, self.stats.groups()
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
    key: str | None = None
    scores: dict[str, float]
    calibration: dict[str, float] | None = None
    weight_change: dict[str, float] | None = None
    predictions: dict[str, str] | None = None
    """split -> saved logits, relative to the workdir"""
    weights_sha256: str


class Results(StrictModel):
    """``eval/results.json``: the results table, what each row scored, and what produced it."""

    rows: tuple[ResultEntry, ...]
    config_sha256: str
    code_version: str

    @classmethod
    def read(cls, workspace: Workspace) -> Results:
        return cls.model_validate_json(workspace.results.read_text())

    def entry(self, key: str) -> ResultEntry:
        return next(row for row in self.rows if row.key == key)


def evaluate_all(
    context: RunContext,
    workspace: Workspace,
    options: EvaluateOptions = EvaluateOptions(),
    predictor: Predictor | None = None,
) -> Evaluation:
    """Score every model of the run and write results, metrics, per-class, group and logits files.

    ``predictor`` gives each model's logits (default: the run's classifier computes them).
    """
    config = context.config
    reads = [Link.FINAL, *([Link.RUNNING] if options.running_soups else [])]
    chain = verified_chain(config, workspace, reads, loads=[Link.THETA0, Link.RUNNING, Link.SOUP, Link.FINAL])
    theta0, soup, final = chain.theta0, chain.soup, chain.final
    assert theta0 is not None and soup is not None and final is not None
    models = [(ZERO_SHOT_KEY, ZERO_SHOT, theta0)]
    models += [(f"soup_f{f}", f"soup up to {factor_label(f)}", running) for f, running in chain.running.items()]
    models.append((STAGE1_KEY, STAGE1, soup))
    if final.sidecar.retrained is not False:
        models.append((FINAL_KEY, FINAL, final))
    saved = {
        SavedLogits.ALL: {key for key, _, _ in models},
        SavedLogits.FINAL: {models[-1][0]},
        SavedLogits.NONE: set(),
    }[options.save_logits]
    scorer = _RowScorer(context, workspace, predictor or ModelPredictor(context), theta0)
    rows = [scorer.row(key, name, checkpoint, save=key in saved) for key, name, checkpoint in models]
    _remove_other_predictions(workspace, rows)
    evaluation = Evaluation(rows, context.splits.train.class_names, context.train_counts, scorer.stats)
    _write(evaluation, context, workspace)
    return evaluation


class _RowScorer:
    def __init__(self, context: RunContext, workspace: Workspace, predictor: Predictor, theta0: Checkpoint) -> None:
        self.context, self.workspace, self.predictor, self.theta0 = context, workspace, predictor, theta0
        self.stats = ClassStats(context.train_counts, context.config.data.thresholds)

    def row(self, key: str, name: str, checkpoint: Checkpoint, save: bool) -> ResultRow:
        context, splits = self.context, self.context.splits
        test = Predictions(self.predictor(checkpoint, Split.TEST), splits.test.labels)
        val = Predictions(self.predictor(checkpoint, Split.VAL), splits.val.labels)
        scores = score_predictions(
            test.logits.argmax(axis=1), test.labels, context.train_counts, context.config.data.thresholds
        )
        calibration = calibrate(val.logits, val.labels, test.logits, test.labels, self.stats.class_groups())
        saved = None
        if save:
            pairs = ((Split.TEST, test), (Split.VAL, val))
            saved = {split.value: self._save(key, name, checkpoint, split, p) for split, p in pairs}
        return ResultRow(
            key, name, checkpoint, scores, calibration, weight_change(checkpoint.path, self.theta0.path), saved
        )

    def _save(self, key: str, name: str, checkpoint: Checkpoint, split: Split, predictions: Predictions) -> str:
        path = self.workspace.predictions(key, split.value)
        predictions.write(
            path,
            model=name,
            split=split.value,
            dataset=self.context.splits.name,
            model_weights_sha256=checkpoint.sidecar.weights_sha256,
            config_sha256=head_config_sha256(self.context.config),
            prediction_config_sha256=prediction_config_sha256(self.context.config),
        )
        return str(path.relative_to(self.workspace.root))


def _remove_other_predictions(workspace: Workspace, rows: list[ResultRow]) -> None:
    """Logits an earlier evaluation saved for models this one did not save are no longer what the results say."""
    written = [workspace.root / path for row in rows for path in (row.predictions or {}).values()]
    kept = {*written, *map(sidecar_path, written)}
    if workspace.predictions_dir.is_dir():
        for path in workspace.predictions_dir.rglob("*"):
            if path.is_file() and path not in kept:
                path.unlink()


def _write(evaluation: Evaluation, context: RunContext, workspace: Workspace) -> None:
    workspace.predictions_dir.mkdir(parents=True, exist_ok=True)  # a DVC output, even when nothing is saved
    results = Results(
        rows=tuple(
            ResultEntry(
                model=row.name,
                key=row.key,
                scores=row.scores.headline(),
                calibration=row.calibration.as_dict(),
                weight_change=row.weight_change.as_dict(),
                predictions=row.predictions,
                weights_sha256=row.checkpoint.sidecar.weights_sha256,
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
