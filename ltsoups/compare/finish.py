"""A comparison's run after its members: the pipeline's merge, retrain-head and evaluate, or an ensemble's mean
of its members' logits; one runner task per run, so that on a cluster the runs finish in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltsoups.analysis.calibration import calibrate
from ltsoups.checkpoint import Checkpoint
from ltsoups.compare.methods import Method
from ltsoups.compare.results import MethodResult
from ltsoups.compare.store import CachedPredictor
from ltsoups.config import LtSoupsConfig
from ltsoups.contracts import Worker
from ltsoups.data.stats import ClassStats
from ltsoups.evaluation import score_predictions
from ltsoups.pipeline import finish_run
from ltsoups.predictions import Predictions, Split
from ltsoups.provenance import code_version, hash_json
from ltsoups.runners.task import shared_context, working_directory
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import ModelPredictor
from ltsoups.stages.evaluate_options import EvaluateOptions, SavedLogits
from ltsoups.stages.inputs import Link, verified_chain
from ltsoups.training.cost import TrainingCost
from ltsoups.training.loop import TrainingObserver
from ltsoups.workspace import StoreWorkspace, Workspace

ENSEMBLE_KEY = "ensemble"


@dataclass(frozen=True)
class MethodSeed:
    """One run of a comparison: a method at a seed, in its own workdir."""

    method: Method
    seed: int
    config: LtSoupsConfig

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.config.workdir))

    @property
    def label(self) -> str:
        return f"{self.method.name} seed {self.seed}"


@dataclass(frozen=True)
class FinishTask:
    """Finishes one run whose members are trained; picklable, so any runner's worker can take it."""

    run: MethodSeed
    root: Path
    """the comparison's folder: a result names its logits files relative to it"""
    store: StoreWorkspace
    member_keys: tuple[str, ...]
    """the store's keys of the run's members (their training costs)"""
    directory: Path
    """the driver's working directory, where the config's relative paths resolve"""

    @property
    def name(self) -> str:
        return self.run.label

    def train(self, observer: TrainingObserver) -> MethodResult:
        with working_directory(self.directory):
            context = shared_context(self.run.config)
            costs = [
                TrainingCost.model_validate_json(self.store.member_cost(key).read_text()) for key in self.member_keys
            ]
            if self.run.method.ensemble_of is None:
                return _pipeline_result(self.run, context, self.store, costs, self.root, observer)
            return _ensemble_result(self.run, context, self.store, costs, self.root)


@dataclass(frozen=True)
class ResultRecorder:
    """The driver's side of the finishing batch: writes each run's result as it arrives and tells ``on_result``."""

    root: Path
    runs: dict[str, MethodSeed]
    """task name -> run"""
    observe_head: Callable[[str], TrainingObserver]
    on_result: Callable[[MethodSeed, MethodResult], None]
    say: Callable[[str], None]

    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        self.say(f"merging, re-training heads and evaluating {len(pending)} runs")

    def started(self, name: str, worker: Worker) -> TrainingObserver:
        return self.observe_head(f"{name} retrain-head")

    def finished(self, name: str, result: MethodResult) -> None:
        self.on_result(self.runs[name], result)

    def failed(self, name: str, error: str) -> None:
        self.say(f"{name} failed: {error}")


def _predictor(context: RunContext, store: StoreWorkspace) -> CachedPredictor:
    labels = {Split.VAL: context.splits.val.labels, Split.TEST: context.splits.test.labels}
    return CachedPredictor(store, context.config, labels, ModelPredictor(context))


def _pipeline_result(
    run: MethodSeed,
    context: RunContext,
    store: StoreWorkspace,
    member_costs: list[TrainingCost],
    root: Path,
    observer: TrainingObserver,
) -> MethodResult:
    workspace = run.workspace
    options = EvaluateOptions(save_logits=SavedLogits.FINAL, running_soups=False)
    finished = finish_run(context, workspace, lambda: observer, options=options, predictor=_predictor(context, store))
    row = finished.evaluation.final_row
    head_cost = [finished.head_cost] if finished.head_cost is not None else []
    return MethodResult(
        method=run.method.name,
        seed=run.seed,
        model=row.name,
        predictions={split: _relative(workspace.root / path, root) for split, path in (row.predictions or {}).items()},
        weights_sha256=row.checkpoint.sidecar.weights_sha256,
        scores=row.scores.headline(),
        calibration=row.calibration.as_dict(),
        weight_change=row.weight_change.as_dict(),
        cost=TrainingCost.total([*member_costs, *head_cost]),
        search_cost=None if finished.merged.search is None else finished.merged.search.cost,
        members=len(member_costs),
        models_at_inference=1,
        config_sha256=hash_json(run.config.model_dump(mode="json")),
        code_version=code_version(),
    )


def _ensemble_result(
    run: MethodSeed, context: RunContext, store: StoreWorkspace, member_costs: list[TrainingCost], root: Path
) -> MethodResult:
    """The members' logits averaged: no merge, no CR."""
    workspace, config = run.workspace, run.config
    chain = verified_chain(config, workspace, reads=[Link.MEMBERS], loads=[Link.MEMBERS])
    by_factor = sorted(chain.member_checkpoints.values(), key=lambda member: member[0])  # the merges' order
    members = [checkpoint for _, checkpoint in by_factor]
    if not members:
        raise ValueError(f"{run.method.name}: {run.method.ensemble_of} trains no members to ensemble")
    predictor, splits = _predictor(context, store), context.splits
    averaged = {
        split: Predictions(_mean_logits(members, split, predictor), getattr(splits, split.value).labels)
        for split in (Split.TEST, Split.VAL)
    }
    saved = {}
    for split, predictions in averaged.items():
        path = workspace.predictions(ENSEMBLE_KEY, split.value)
        predictions.write(
            path,
            model=f"ensemble of {len(members)} members",
            split=split.value,
            dataset=splits.name,
            members_weights_sha256=[member.sidecar.weights_sha256 for member in members],
        )
        saved[split.value] = _relative(path, root)
    test, val = averaged[Split.TEST], averaged[Split.VAL]
    stats = ClassStats(context.train_counts, config.data.thresholds)
    scores = score_predictions(test.logits.argmax(axis=1), test.labels, context.train_counts, config.data.thresholds)
    calibration = calibrate(val.logits, val.labels, test.logits, test.labels, stats.class_groups())
    return MethodResult(
        method=run.method.name,
        seed=run.seed,
        model=f"ensemble of {len(members)} members",
        predictions=saved,
        weights_sha256=None,
        scores=scores.headline(),
        calibration=calibration.as_dict(),
        weight_change=None,
        cost=TrainingCost.total(member_costs),
        members=len(member_costs),
        models_at_inference=len(members),
        config_sha256=hash_json(config.model_dump(mode="json")),
        code_version=code_version(),
    )


def _mean_logits(members: Sequence[Checkpoint], split: Split, predictor: CachedPredictor) -> np.ndarray:
    """Accumulated in float64 one member at a time: memory stays two logit arrays however many members."""
    total = predictor(members[0], split).astype(np.float64)
    for member in members[1:]:
        total += predictor(member, split)
    return (total / len(members)).astype(np.float32)


def _relative(path: Path, root: Path) -> str:
    return str(path.resolve().relative_to(root.resolve()))
