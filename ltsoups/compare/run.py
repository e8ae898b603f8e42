"""Running a comparison: every method x seed in its own workdir, with shared theta_0, members and logits.

Phases, so that all the member training of a comparison is one batch of the config's runner:
1. per run: its config, the prepare stage in its workdir, theta_0 from the store (built once per
   data/backbone/head), and the key of every member its plan needs;
2. the members no store entry holds yet, each trained once (``runner``: one after another here, or in
   parallel on Ray), recorded in the store as each finishes, then linked into every workdir using it;
3. per run: merge, retrain-head and evaluate (theta_0, stage 1 and the final model, logits cached by
   weights), or for an ensemble the mean of its members' logits; a ``MethodResult`` per run.
Seeds: a run's config ``seed`` (subsets, data order, augmentation, init) is the comparison's seed, and
the keys of ``compare.vary_with_seed`` move with it (the embedded default moves its world seed, so
that which classes are large changes from run to run). Every method of one run is scored on the same
test images with the same evaluation; the paired differences pair methods within each run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ltsoups.analysis.calibration import calibrate
from ltsoups.checkpoint import Checkpoint, open_checkpoint
from ltsoups.compare.methods import Method
from ltsoups.compare.results import RESULT_FILE, SPEC_FILE, ComparisonSpec, MethodEntry, MethodResult
from ltsoups.compare.store import ArtifactStore, CachedPredictor
from ltsoups.config import ConfigError, ConfigIssue, ConfigLayer, LtSoupsConfig, validate_layers
from ltsoups.contracts import MemberFollower, Runner, Worker
from ltsoups.data.stats import ClassStats
from ltsoups.evaluation import score_predictions
from ltsoups.io.atomic import write_json_atomic
from ltsoups.predictions import Predictions, Split
from ltsoups.provenance import code_version, hash_json
from ltsoups.registry import PluginRegistry, installed_registry
from ltsoups.runners.task import MemberTask, SilentFollower, lending
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import ModelPredictor, evaluate_all
from ltsoups.stages.evaluate_options import EvaluateOptions, SavedLogits
from ltsoups.stages.inputs import Link, verified_chain
from ltsoups.stages.member import MemberOutput
from ltsoups.stages.merge import merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.stages.retrain_head import retrain_head
from ltsoups.stages.sections import member_config_sha256
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.cost import CostMeter, TrainingCost, samples_seen
from ltsoups.training.loop import SilentObserver, TrainingObserver
from ltsoups.workspace import Workspace

ENSEMBLE_KEY = "ensemble"


@dataclass(frozen=True)
class ComparisonRequest:
    root: Path
    base: Sequence[ConfigLayer]
    """the user's params file and --set overrides"""
    source: str
    methods: Sequence[Method]
    seeds: Sequence[int]
    reference: str


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
class ComparisonDisplay:
    """How a comparison shows its work: each member as the runner trains it, each head, and a line per step."""

    members: MemberFollower = field(default_factory=SilentFollower)
    head: Callable[[str], TrainingObserver] = lambda label: SilentObserver()
    say: Callable[[str], None] = lambda line: None


class ComparisonHooks(Protocol):
    def run_finished(self, run: MethodSeed, result: MethodResult) -> None: ...


SHARED_SECTIONS = ("data", "evaluation", "runtime")
"""What every method of one run shares: the same test images, scored the same way, on the same hardware."""


def run_dir(root: Path, method: str, seed: int) -> Path:
    return root / "runs" / method / f"seed-{seed}"


def run_layer(base: LtSoupsConfig, seed: int) -> ConfigLayer:
    """The settings of the run at ``seed``: the seed, and each key of ``compare.vary_with_seed`` moved as far."""
    offset, dumped = seed - base.seed, base.model_dump(mode="json")
    tree: dict[str, Any] = {"seed": seed}
    for key in base.compare.vary_with_seed:
        *path, leaf = key.split(".")
        node: Any = dumped
        for part in [*path, leaf]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, int) or isinstance(node, bool):
            issue = ConfigIssue("compare.vary_with_seed", key, f"not an integer setting of the config (it is {node!r})")
            raise ConfigError([issue], "ltsoups compare")
        nested = tree
        for part in path:
            nested = nested.setdefault(part, {})
        nested[leaf] = node + offset
    return ConfigLayer(f"compare: seed {seed}", tree, user=True)


def run_comparison(
    request: ComparisonRequest,
    display: ComparisonDisplay,
    hooks: ComparisonHooks | None = None,
    registry: PluginRegistry | None = None,
) -> ComparisonSpec:
    """Run every method at every seed and write each run's result and the comparison's spec."""
    started, say = time.perf_counter(), display.say
    registry = registry or installed_registry()
    base = validate_layers(request.base, request.source, registry)
    layers = {seed: run_layer(base, seed) for seed in request.seeds}
    shared = {seed: validate_layers([*request.base, layers[seed]], request.source, registry) for seed in request.seeds}
    runs = []
    for method in request.methods:
        for seed in request.seeds:
            folder = run_dir(request.root, method.name, seed)
            config = method.config(request.base, request.source, layers[seed], folder, registry)
            runs.append(MethodSeed(method, seed, config))
    for run in runs:
        for section in SHARED_SECTIONS:
            if getattr(run.config, section) != getattr(shared[run.seed], section):
                issue = ConfigIssue(f"methods.{run.method.name}", run.method.settings, f"changes the {section} section")
                raise ConfigError([issue], "a comparison scores every method of a run on the same data, the same way")
    (request.root / SPEC_FILE).unlink(missing_ok=True)  # never a spec of an earlier invocation over these runs
    store = ArtifactStore(request.root / "store")
    contexts = _Contexts(store, registry)
    needs = _prepare_runs(runs, contexts, store)
    _check_same_classes(runs, contexts)
    say(f"{len(runs)} runs need {sum(len(uses) for uses in needs.values())} members, {len(needs)} of them distinct")
    runner = contexts.of(runs[0]).plugin(base.runner)
    trained = _train_missing(needs, contexts, store, runner, display)
    for run in runs:
        context = contexts.of(run)
        if run.method.ensemble_of is None:
            result = _pipeline_result(run, context, store, needs, request.root, display.head)
        else:
            result = _ensemble_result(run, context, store, needs, request.root)
        result.write(run_dir(request.root, run.method.name, run.seed) / RESULT_FILE)
        say(f"{run.label}: {result.model}, balanced {result.scores['balanced']:.2f}")
        if hooks is not None:
            hooks.run_finished(run, result)
    splits, train_counts = contexts.of(runs[0]).splits, contexts.of(runs[0]).train_counts
    spec = ComparisonSpec(
        methods=tuple(
            MethodEntry(name=m.name, description=m.description, settings=tuple(m.settings), ensemble_of=m.ensemble_of)
            for m in request.methods
        ),
        seeds=tuple(request.seeds),
        reference=request.reference,
        dataset=splits.name,
        class_names=splits.train.class_names,
        train_counts=tuple(int(n) for n in train_counts),
        class_groups=tuple(g.value for g in ClassStats(train_counts, base.data.thresholds).groups()),
        base_config=base.model_dump(mode="json"),
        code_version=code_version(),
        members_trained=trained,
        members_used=sum(len(uses) for uses in needs.values()),
        seconds=time.perf_counter() - started,
    )
    spec.write(request.root)
    return spec


# ---------------------------------------------------------------------------------------- contexts


@dataclass
class _Contexts:
    """A context per data/backbone/head/runtime in which theta_0 is built once; each run's context derives
    from it, sharing the loaded dataset and classifier."""

    store: ArtifactStore
    registry: PluginRegistry
    _bases: dict[str, RunContext] = field(default_factory=dict)
    _runs: dict[tuple[str, int], RunContext] = field(default_factory=dict)

    def of(self, run: MethodSeed) -> RunContext:
        key = (run.method.name, run.seed)
        if key not in self._runs:
            self._runs[key] = self._base(run.config).derive(run.config)
        return self._runs[key]

    def theta0(self, config: LtSoupsConfig) -> Path:
        """theta_0 of ``config`` in the store, built there first if it is not yet."""
        workspace = self.store.theta0_workspace(ArtifactStore.theta0_key(config))
        if not self.store.holds(workspace.theta0):
            build_theta0(self._base(config), workspace)
        return workspace.theta0

    def _base(self, config: LtSoupsConfig) -> RunContext:
        key = config.section_hash("data", "backbone", "head", "runtime")
        if key not in self._bases:
            donor = next((c for c in self._bases.values() if c.config.data == config.data), None)
            self._bases[key] = donor.derive(config) if donor is not None else RunContext(config, self.registry)
        return self._bases[key]


# ------------------------------------------------------------------------------------- phase 1, 2

_Needs = dict[str, list[tuple[MethodSeed, str]]]
"""member key -> (run, member id) of every run whose plan has it"""


def _prepare_runs(runs: Sequence[MethodSeed], contexts: _Contexts, store: ArtifactStore) -> _Needs:
    needs: _Needs = {}
    for run in runs:
        theta0 = contexts.theta0(run.config)  # before the run's context exists: it shares the classifier
        files = prepare(contexts.of(run), run.workspace)
        store.link(theta0, run.workspace.theta0)
        theta0_sha = open_checkpoint(run.workspace.theta0, expect_kind="theta0").sidecar.weights_sha256
        member_config = member_config_sha256(run.config)
        for planned in files.plan.members:
            key = store.member_key(planned.manifest_sha256, member_config, theta0_sha)
            needs.setdefault(key, []).append((run, planned.member))
    return needs


def _check_same_classes(runs: Sequence[MethodSeed], contexts: _Contexts) -> None:
    """The report's shot groups are one for all runs: every run must have the first run's training counts."""
    first = contexts.of(runs[0]).train_counts
    for run in runs[1:]:
        if not np.array_equal(contexts.of(run).train_counts, first):
            keys = ", ".join(run.config.compare.vary_with_seed) or "(none)"
            issue = ConfigIssue(
                "compare.vary_with_seed", keys, f"{run.label} has other class sizes than {runs[0].label}"
            )
            raise ConfigError([issue], "a comparison reports every run on the same shot groups")


def _train_missing(
    needs: _Needs, contexts: _Contexts, store: ArtifactStore, runner: Runner, display: ComparisonDisplay
) -> int:
    missing = {key: uses[0] for key, uses in needs.items() if not store.holds(store.member(key))}
    display.say(f"training {len(missing)} members ({len(needs) - len(missing)} found in the store)")
    here = Path.cwd()
    tasks = {
        key: MemberTask(run.config, run.workspace, member, here, label=f"{run.label} {member}")
        for key, (run, member) in missing.items()
    }
    recorder = _StoreRecorder(store, {task.name: key for key, task in tasks.items()}, display.members)
    recorder.planned([task.name for task in tasks.values()], [])
    lent = {id(context): context for context in (contexts.of(run) for run, _ in missing.values())}
    with lending(*lent.values()):  # members trained in this process use the runs' loaded data and classifiers
        runner.train(list(tasks.values()), recorder)
    for key, uses in needs.items():
        for run, member in uses:
            store.link(store.member(key), run.workspace.member(member))
    return len(missing)


@dataclass(frozen=True)
class _StoreRecorder:
    """Follows the runner's batch for the display, and records each member in the store as it finishes, so
    that an interrupted comparison keeps what it finished."""

    store: ArtifactStore
    keys: dict[str, str]
    """task name -> member key"""
    display: MemberFollower

    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        self.display.planned(pending, up_to_date)

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        return self.display.started(member, worker)

    def finished(self, member: str, output: MemberOutput) -> None:
        key, store = self.keys[member], self.store
        write_json_atomic(store.member_cost(key), output.cost.model_dump(mode="json"))  # first: the link completes it
        store.link(output.checkpoint.path, store.member(key))
        self.display.finished(member, output)

    def failed(self, member: str, error: str) -> None:
        self.display.failed(member, error)


# ----------------------------------------------------------------------------------------- phase 3


def _member_costs(run: MethodSeed, needs: _Needs, store: ArtifactStore) -> list[TrainingCost]:
    keys = [key for key, uses in needs.items() if any(user.label == run.label for user, _ in uses)]
    return [TrainingCost.model_validate_json(store.member_cost(key).read_text()) for key in keys]


def _predictor(context: RunContext, store: ArtifactStore) -> CachedPredictor:
    labels = {Split.VAL: context.splits.val.labels, Split.TEST: context.splits.test.labels}
    return CachedPredictor(store, context.config, labels, ModelPredictor(context))


def _pipeline_result(
    run: MethodSeed,
    context: RunContext,
    store: ArtifactStore,
    needs: _Needs,
    root: Path,
    observer_for: Callable[[str], TrainingObserver],
) -> MethodResult:
    workspace = run.workspace
    merge_members(context, workspace)
    meter = CostMeter(context.runtime.device)
    with meter.measure():
        head = retrain_head(context, workspace, observer_for(f"{run.label} retrain-head"))
    member_costs = _member_costs(run, needs, store)
    costs = list(member_costs)
    if head.result is not None:
        size, settings = len(context.splits.train), run.config.retrain_head
        samples = samples_seen(size, settings.optim.batch_size, head.result.steps, settings.sampling.mode)
        costs.append(meter.cost(head.result.steps, samples))
    options = EvaluateOptions(save_logits=SavedLogits.FINAL, running_soups=False)
    row = evaluate_all(context, workspace, options, _predictor(context, store)).final_row
    return MethodResult(
        method=run.method.name,
        seed=run.seed,
        model=row.name,
        predictions={split: _relative(workspace.root / path, root) for split, path in (row.predictions or {}).items()},
        weights_sha256=row.checkpoint.sidecar.weights_sha256,
        scores=row.scores.headline(),
        calibration=row.calibration.as_dict(),
        weight_change=row.weight_change.as_dict(),
        cost=TrainingCost.total(costs),
        members=len(member_costs),
        models_at_inference=1,
        config_sha256=hash_json(run.config.model_dump(mode="json")),
        code_version=code_version(),
    )


def _ensemble_result(
    run: MethodSeed, context: RunContext, store: ArtifactStore, needs: _Needs, root: Path
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
    costs = _member_costs(run, needs, store)
    return MethodResult(
        method=run.method.name,
        seed=run.seed,
        model=f"ensemble of {len(members)} members",
        predictions=saved,
        weights_sha256=None,
        scores=scores.headline(),
        calibration=calibration.as_dict(),
        weight_change=None,
        cost=TrainingCost.total(costs),
        members=len(costs),
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
