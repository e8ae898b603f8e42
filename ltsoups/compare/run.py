"""Running a comparison: every method x seed in its own workdir, with shared theta_0, members and logits.

Phases, so that all the member training of a comparison is one batch of the config's runner:
1. per run: its config, the prepare stage in its workdir, theta_0 from the store (built once per
   data/backbone/head), and the key of every member its plan needs;
2. the members no store entry holds yet, each trained once (``runner``: one after another here, or in
   parallel on Ray), recorded in the store as each finishes, then linked into every workdir using it;
3. per run, one runner task each (``compare/finish.py``): the pipeline's merge, retrain-head and evaluate
   (``ltsoups.pipeline.finish_run``; logits cached by weights), or for an ensemble the mean of its members'
   logits; a ``MethodResult`` per run, written as each arrives.
Both batches run in one session of the runner (a Ray cluster starts once).
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

from ltsoups.checkpoint import open_checkpoint
from ltsoups.compare.finish import FinishTask, MethodSeed, ResultRecorder
from ltsoups.compare.methods import Method
from ltsoups.compare.results import ComparisonSpec, MethodEntry, MethodResult
from ltsoups.compare.store import holds, link, theta0_key
from ltsoups.config import ConfigError, ConfigIssue, ConfigLayer, LtSoupsConfig, validate_layers
from ltsoups.contracts import MemberFollower, Runner, Worker
from ltsoups.data.stats import ClassStats
from ltsoups.io.atomic import write_json_atomic
from ltsoups.provenance import code_version
from ltsoups.registry import PluginRegistry, installed_registry
from ltsoups.runners.task import MemberTask, SilentFollower, lending
from ltsoups.stages.context import RunContext
from ltsoups.stages.inputs import MemberInputs
from ltsoups.stages.member import MemberOutput
from ltsoups.stages.prepare import prepare
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.loop import SilentObserver, TrainingObserver
from ltsoups.workspace import ComparisonWorkspace, StoreWorkspace


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
class ComparisonDisplay:
    """How a comparison shows its work: each member as the runner trains it, each head, and a line per step."""

    members: MemberFollower = field(default_factory=SilentFollower)
    head: Callable[[str], TrainingObserver] = lambda label: SilentObserver()
    say: Callable[[str], None] = lambda line: None


class ComparisonHooks(Protocol):
    def run_finished(self, run: MethodSeed, result: MethodResult) -> None: ...


SHARED_SECTIONS = ("data", "evaluation", "runtime")
"""What every method of one run shares: the same test images, scored the same way, on the same hardware."""


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
    comparison = ComparisonWorkspace(request.root)
    base = validate_layers(request.base, request.source, registry)
    layers = {seed: run_layer(base, seed) for seed in request.seeds}
    shared = {seed: validate_layers([*request.base, layers[seed]], request.source, registry) for seed in request.seeds}
    runs = []
    for method in request.methods:
        for seed in request.seeds:
            folder = comparison.run(method.name, seed).root
            config = method.config(request.base, request.source, layers[seed], folder, registry)
            runs.append(MethodSeed(method, seed, config))
    for run in runs:
        for section in SHARED_SECTIONS:
            if getattr(run.config, section) != getattr(shared[run.seed], section):
                issue = ConfigIssue(f"methods.{run.method.name}", run.method.settings, f"changes the {section} section")
                raise ConfigError([issue], "a comparison scores every method of a run on the same data, the same way")
    comparison.spec.unlink(missing_ok=True)  # never a spec of an earlier invocation over these runs
    store = comparison.store
    contexts = _Contexts(store, registry)
    needs, inputs = _prepare_runs(runs, contexts, store)
    _check_same_classes(runs, contexts)
    say(f"{len(runs)} runs need {sum(len(uses) for uses in needs.values())} members, {len(needs)} of them distinct")
    runner = contexts.of(runs[0]).plugin(base.runner)
    with runner.session():
        trained = _train_missing(needs, inputs, contexts, store, runner, display)
        _finish_runs(runs, needs, contexts, store, runner, request.root, display, hooks)
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
    spec.write(comparison.spec)
    return spec


# ---------------------------------------------------------------------------------------- contexts


@dataclass
class _Contexts:
    """A context per data/backbone/head/runtime in which theta_0 is built once; each run's context derives
    from it, sharing the loaded dataset and classifier."""

    store: StoreWorkspace
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
        workspace = self.store.theta0(theta0_key(config))
        if not holds(workspace.theta0):
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
"""member key (``MemberInputs.key``) -> (run, member id) of every run whose plan has it"""


def _prepare_runs(
    runs: Sequence[MethodSeed], contexts: _Contexts, store: StoreWorkspace
) -> tuple[_Needs, dict[str, MemberInputs]]:
    needs: _Needs = {}
    inputs: dict[str, MemberInputs] = {}
    for run in runs:
        theta0 = contexts.theta0(run.config)  # before the run's context exists: it shares the classifier
        files = prepare(contexts.of(run), run.workspace)
        link(theta0, run.workspace.theta0)
        theta0_sha = open_checkpoint(run.workspace.theta0, expect_kind="theta0").sidecar.weights_sha256
        for planned in files.plan.members:
            member = MemberInputs.of(run.config, planned.manifest_sha256, theta0_sha, planned.factor, planned.replica)
            inputs[member.key] = member
            needs.setdefault(member.key, []).append((run, planned.member))
    return needs, inputs


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
    needs: _Needs,
    inputs: dict[str, MemberInputs],
    contexts: _Contexts,
    store: StoreWorkspace,
    runner: Runner,
    display: ComparisonDisplay,
) -> int:
    missing = {key: uses[0] for key, uses in needs.items() if not inputs[key].trained_at(store.member(key))}
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
            link(store.member(key), run.workspace.member(member))
    return len(missing)


@dataclass(frozen=True)
class _StoreRecorder:
    """Follows the runner's batch for the display, and records each member in the store as it finishes, so
    that an interrupted comparison keeps what it finished."""

    store: StoreWorkspace
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
        link(output.checkpoint.path, store.member(key))
        self.display.finished(member, output)

    def failed(self, member: str, error: str) -> None:
        self.display.failed(member, error)


# ----------------------------------------------------------------------------------------- phase 3


def _finish_runs(
    runs: Sequence[MethodSeed],
    needs: _Needs,
    contexts: _Contexts,
    store: StoreWorkspace,
    runner: Runner,
    root: Path,
    display: ComparisonDisplay,
    hooks: ComparisonHooks | None,
) -> None:
    def record(run: MethodSeed, result: MethodResult) -> None:
        result.write(ComparisonWorkspace(root).result(run.method.name, run.seed))
        display.say(f"{run.label}: {result.model}, balanced {result.scores['balanced']:.2f}")
        if hooks is not None:
            hooks.run_finished(run, result)

    here = Path.cwd()
    tasks = [
        FinishTask(run, root, store, tuple(key for key, uses in needs.items() if any(u is run for u, _ in uses)), here)
        for run in runs
    ]
    recorder = ResultRecorder(root, {run.label: run for run in runs}, display.head, record, display.say)
    recorder.planned([task.name for task in tasks], [])
    with lending(*{id(c): c for c in (contexts.of(run) for run in runs)}.values()):
        runner.train(tasks, recorder)
