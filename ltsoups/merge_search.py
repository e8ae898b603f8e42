"""The recursive merge's lambdas and N chosen on the validation split, built incrementally.

Each factor's merge (mean_k: the within-factor step on its replicas) does not depend on lambda, so it
is computed once, in one pass over the inputs (every member read once), and kept in float64 files.
Every soup tried then follows the recursion itself, Theta_k from Theta_(k-1) as stored and mean_k
(``SearchableMerger.fold``): a fold reads one factor merge, not the members. Two modes
(``merge.search.mode``):

- ``lambda-n``: one lambda for every factor; for each lambda of the grid, the K running soups. Every
  (lambda, N) is scored; the best is chosen.
- ``per-factor``: one lambda per factor, by coordinate ascent over the grid. The first sweep picks
  lambda_1, ..., lambda_K in factor order, each the value whose running soup Theta_k scores best given
  the lambdas already picked (the same cost as ``lambda-n``: K folds and K scores per lambda). A second
  sweep of that rule would pick the same (Theta_k depends on lambda_1..lambda_k only), so each later
  sweep (at most ``merge.search.sweeps`` in all) re-picks every lambda_k for the score of the best
  prefix, keeping it unless another value does strictly better; the ascent stops after a sweep that
  changes nothing. N is the best prefix of the lambdas picked.

Every soup is scored on validation; the test split is never seen. The soups written are the ones
scored, bit for bit (a fold is a pure function of the stored tensors). The cost (folds, validation
passes) is counted as the search runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from pydantic import Field

from ltsoups.checkpoint import CheckpointWriter
from ltsoups.contracts import FactorGroup, SearchableMerger, ValidationMetric
from ltsoups.evaluation import Scores
from ltsoups.io.safetensors import DTYPES, TensorFileReader, TensorLayout
from ltsoups.merging import MergeInputs, TensorSource
from ltsoups.schema import StrictModel
from ltsoups.settings import SearchMode

StateScorer = Callable[[Mapping[str, torch.Tensor]], Scores]
"""Validation scores of a model's tensors (a soup held in memory)."""
Soup = dict[str, torch.Tensor]


class SearchSpec(Protocol):
    """What a search is asked for (the config's ``merge.search``)."""

    @property
    def mode(self) -> SearchMode: ...
    @property
    def lambdas(self) -> tuple[float, ...]:
        """the grid, ascending, in the merger's own convention"""

    @property
    def metric(self) -> ValidationMetric: ...
    @property
    def sweeps(self) -> int:
        """per-factor: sweeps of coordinate ascent at most"""


def accuracy(scores: Scores, metric: ValidationMetric) -> float:
    """The ``metric`` accuracy of ``scores``; a clear error when the split has no class of that group."""
    value = scores.headline().get(metric.value)
    if value is None:
        raise ValueError(
            f"no {metric.value} accuracy to choose by: the validation split has no {metric.value}-shot class"
        )
    return value


class SearchCost(StrictModel):
    """What a search cost on top of the factor merges: soups folded and validation passes."""

    factor_merges: int = Field(ge=0, description="mean_k computed (one pass over every input), once per factor")
    folds: int = Field(ge=0, description="soups folded: Theta_k from Theta_(k-1) and mean_k, a whole model each")
    val_passes: int = Field(ge=0, description="soups scored on the validation split")


@dataclass(frozen=True)
class GridPoint:
    """One soup scored: the running soup after factor ``upto_factor``, with one lambda per factor folded."""

    lambdas: tuple[float, ...]
    """lambda_1..lambda_(N+1) in the merger's convention (lambda-n: all the same)"""
    keep_previous: tuple[float, ...]
    """each lambda as the weight on Theta_(k-1) (the paper's convention), whatever side the config's lambda weighs"""
    upto_factor: int
    val: Scores

    @property
    def n(self) -> int:
        """The paper's N: factors 2^0..2^N merged."""
        return len(self.lambdas) - 1

    @property
    def lam(self) -> float:
        """The last factor's lambda (lambda-n: every factor's)."""
        return self.lambdas[-1]


@dataclass(frozen=True)
class SearchRow:
    """One row of the search's table and figure: the score of each lambda tried, the one picked (if any)."""

    label: str
    key: str
    """a name for the row's series in a tracking store"""
    scores: dict[float, float]
    picked: float | None


@dataclass(frozen=True)
class AscentStep:
    """One coordinate of the per-factor ascent: factor ``factor``'s lambda tried at every grid value."""

    sweep: int
    factor: int
    objective: str
    """what ``tried`` scores: the running soup after this factor (sweep 1), or the best prefix (later sweeps)"""
    tried: dict[float, float]
    picked: float

    def as_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "factor": self.factor,
            "objective": self.objective,
            "tried": [{"lambda": lam, "score": score} for lam, score in self.tried.items()],
            "picked": self.picked,
        }


class _Soups:
    """The soups of one search: each folded from its predecessor and one factor merge, scored once, counted."""

    def __init__(
        self,
        merger: SearchableMerger,
        groups: Sequence[FactorGroup],
        factors: Sequence[Path],
        base: Soup,
        score: StateScorer,
        metric: ValidationMetric,
    ) -> None:
        self.merger, self.groups, self.factors, self.base = merger, groups, factors, base
        self._score, self.metric = score, metric
        self._mergers: dict[float, SearchableMerger] = {}
        self._points: dict[tuple[float, ...], GridPoint] = {}
        self.folds = 0

    def merger_of(self, lam: float) -> SearchableMerger:
        if lam not in self._mergers:
            self._mergers[lam] = self.merger.with_lambda(lam)
        return self._mergers[lam]

    def fold(self, soup: Soup, lambdas: tuple[float, ...]) -> Soup:
        """Theta_k for the factor of ``len(lambdas)``, in place of Theta_(k-1) in ``soup`` (copy it to branch)."""
        self.folds += 1
        return fold_in(self.merger_of(lambdas[-1]), soup, self.factors[len(lambdas) - 1])

    def scored(self, lambdas: tuple[float, ...], soup: Soup) -> GridPoint:
        """The soup of ``lambdas`` scored on validation (once: a soup scored before is not scored again)."""
        if lambdas not in self._points:
            keep = tuple(self.merger_of(lam).keep_previous for lam in lambdas)
            factor = self.groups[len(lambdas) - 1].factor
            self._points[lambdas] = GridPoint(lambdas, keep, factor, self._score(soup))
        return self._points[lambdas]

    def score(self, point: GridPoint) -> float:
        return accuracy(point.val, self.metric)

    def known(self, lambdas: tuple[float, ...]) -> GridPoint | None:
        return self._points.get(lambdas)

    def point(self, lambdas: tuple[float, ...]) -> GridPoint:
        """The soup of ``lambdas``, scored before."""
        return self._points[lambdas]

    @property
    def points(self) -> tuple[GridPoint, ...]:
        """Every soup scored, in the order scored."""
        return tuple(self._points.values())

    def cost(self) -> SearchCost:
        return SearchCost(factor_merges=len(self.factors), folds=self.folds, val_passes=len(self._points))


@dataclass(frozen=True)
class SoupSearch(ABC):
    """Every soup scored on validation, the lambda of every factor chosen, and the soup chosen (N)."""

    mode: ClassVar[SearchMode]
    rule: ClassVar[str]
    row_header: ClassVar[str]
    marked: ClassVar[str]
    """what the rows mark (``SearchRow.picked``)"""

    metric: ValidationMetric
    points: tuple[GridPoint, ...]
    """every soup scored, in the order scored"""
    lambdas: tuple[float, ...]
    """the lambda of every factor, in the merger's convention: the running soups written fold with these"""
    chosen: GridPoint
    cost: SearchCost

    @classmethod
    @abstractmethod
    def run(cls, soups: _Soups, spec: SearchSpec) -> SoupSearch:
        """Fold and score soups until the choice is made."""

    @abstractmethod
    def point_json(self, point: GridPoint) -> dict[str, Any]: ...

    @abstractmethod
    def rows(self) -> list[SearchRow]:
        """The scores as a table over the grid of lambdas (the CLI's table, the figure, the tracked series)."""

    @abstractmethod
    def choice(self) -> dict[str, float]:
        """The choice as numbers (for a tracking store): lambdas, N and the validation score."""

    @abstractmethod
    def describe(self) -> str:
        """The choice in words."""

    @abstractmethod
    def _scored_json(self) -> dict[str, Any]: ...

    def score(self, point: GridPoint) -> float:
        return accuracy(point.val, self.metric)

    def running(self) -> list[GridPoint]:
        """The running soups written, in factor order: the prefixes of ``lambdas``, each one scored."""
        found = {point.lambdas: point for point in self.points}
        return [found[self.lambdas[: k + 1]] for k in range(len(self.lambdas))]

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "metric": self.metric.value,
            "rule": self.rule,
            "chosen": self.point_json(self.chosen),
            **self._scored_json(),
            "cost": self.cost.model_dump(),
        }

    def record(self) -> dict[str, Any]:
        """What every soup written records of the search (the whole of it is in search.json)."""
        return {
            "mode": self.mode.value,
            "chosen": self.point_json(self.chosen),
            "lambdas": list(self.lambdas),
            "metric": self.metric.value,
            "cost": self.cost.model_dump(),
            "grid": "search.json",
        }

    def metrics(self) -> dict[str, Any]:
        """The merge stage's metrics of the search: the soup chosen and the cost."""
        return {**self.point_json(self.chosen), "cost": self.cost.model_dump()}


@dataclass(frozen=True)
class LambdaNSearch(SoupSearch):
    """One lambda for every factor: the grid of lambda x N."""

    mode = SearchMode.LAMBDA_N
    rule = "highest validation score; ties go to the smaller N, then the smaller lambda"
    row_header = "N (up to factor)"
    marked = "chosen"

    @classmethod
    def run(cls, soups: _Soups, spec: SearchSpec) -> LambdaNSearch:
        for lam in spec.lambdas:
            soup = dict(soups.base)
            for k in range(len(soups.factors)):
                lambdas = (lam,) * (k + 1)
                soup = soups.fold(soup, lambdas)
                soups.scored(lambdas, soup)
        chosen = choose(soups.points, spec.metric)
        return cls(spec.metric, soups.points, (chosen.lam,) * len(soups.factors), chosen, soups.cost())

    def point_json(self, point: GridPoint) -> dict[str, Any]:
        return {
            "lambda": point.lam,
            "keep_previous": point.keep_previous[-1],
            "N": point.n,
            "upto_factor": point.upto_factor,
            "val": point.val.headline(),
        }

    def at(self, lam: float) -> list[GridPoint]:
        """The running soups of one lambda, in factor order."""
        return [point for point in self.points if point.lam == lam]

    def rows(self) -> list[SearchRow]:
        rows = []
        for n in sorted({point.n for point in self.points}):
            points = [point for point in self.points if point.n == n]
            picked = self.chosen.lam if n == self.chosen.n else None
            scores = {point.lam: self.score(point) for point in points}
            rows.append(SearchRow(f"{n} ({points[0].upto_factor})", f"N{n}", scores, picked))
        return rows

    def choice(self) -> dict[str, float]:
        return {"lambda": self.chosen.lam, "N": self.chosen.n, "val": self.score(self.chosen)}

    def describe(self) -> str:
        chosen = self.chosen
        return f"lambda {chosen.lam:g}, N {chosen.n} (factors up to {chosen.upto_factor})"

    def _scored_json(self) -> dict[str, Any]:
        return {"grid": [self.point_json(point) for point in self.points]}


@dataclass(frozen=True)
class PerFactorSearch(SoupSearch):
    """One lambda per factor, by coordinate ascent over the grid; N the best prefix."""

    mode = SearchMode.PER_FACTOR
    rule = (
        "sweep 1: each factor's lambda, in factor order, maximises its running soup's validation score (ties: the "
        "smaller lambda); later sweeps: each factor's lambda maximises the best prefix's score, kept unless another "
        "does strictly better (ties among those: the smaller); N: the best prefix (ties: the smaller N)"
    )
    row_header = "sweep, factor: what is scored"
    marked = "each step's pick"

    steps: tuple[AscentStep, ...] = field(default=())

    @classmethod
    def run(cls, soups: _Soups, spec: SearchSpec) -> PerFactorSearch:
        picked, steps = _greedy(soups, spec.lambdas)
        for sweep in range(2, spec.sweeps + 1):
            picked, changed, sweep_steps = _sweep(soups, spec.lambdas, picked, sweep)
            steps += sweep_steps
            if not changed:
                break
        chosen = choose([soups.point(picked[: k + 1]) for k in range(len(picked))], spec.metric)
        return cls(spec.metric, soups.points, picked, chosen, soups.cost(), tuple(steps))

    def point_json(self, point: GridPoint) -> dict[str, Any]:
        return {
            "lambdas": list(point.lambdas),
            "keep_previous": list(point.keep_previous),
            "N": point.n,
            "upto_factor": point.upto_factor,
            "val": point.val.headline(),
        }

    def rows(self) -> list[SearchRow]:
        return [
            SearchRow(
                f"{step.sweep}, {step.factor}: {step.objective}",
                f"s{step.sweep}_f{step.factor}",
                step.tried,
                step.picked,
            )
            for step in self.steps
        ]

    def choice(self) -> dict[str, float]:
        factors = [point.upto_factor for point in self.running()]
        lambdas = {f"lambda_f{factor}": lam for factor, lam in zip(factors, self.lambdas, strict=True)}
        return {**lambdas, "N": self.chosen.n, "val": self.score(self.chosen)}

    def describe(self) -> str:
        chosen = self.chosen
        factors = [point.upto_factor for point in self.running()]
        each = ", ".join(f"f{factor} {lam:g}" for factor, lam in zip(factors, self.lambdas, strict=True))
        return f"lambda per factor {each}; N {chosen.n} (factors up to {chosen.upto_factor})"

    def _scored_json(self) -> dict[str, Any]:
        return {
            "lambdas": list(self.lambdas),
            "ascent": [step.as_json() for step in self.steps],
            "scored": [self.point_json(point) for point in self.points],
        }


SEARCHES: dict[SearchMode, type[SoupSearch]] = {search.mode: search for search in (LambdaNSearch, PerFactorSearch)}


def _greedy(soups: _Soups, grid: Sequence[float]) -> tuple[tuple[float, ...], list[AscentStep]]:
    """Sweep 1: lambda_k for k = 1..K in turn, each the best for Theta_k given the lambdas before it."""
    picked: tuple[float, ...] = ()
    previous, steps = soups.base, []
    for group in soups.groups:
        tried: dict[float, float] = {}
        best: tuple[float, Soup] | None = None
        for lam in grid:  # ascending: a tie keeps the smaller lambda
            soup = soups.fold(dict(previous), (*picked, lam))
            tried[lam] = soups.score(soups.scored((*picked, lam), soup))
            if best is None or tried[lam] > tried[best[0]]:
                best = (lam, soup)
        assert best is not None  # the grid has at least one lambda (the config's validation)
        picked, previous = (*picked, best[0]), best[1]
        steps.append(AscentStep(1, group.factor, "running soup", tried, best[0]))
    return picked, steps


def _sweep(
    soups: _Soups, grid: Sequence[float], picked: tuple[float, ...], sweep: int
) -> tuple[tuple[float, ...], bool, list[AscentStep]]:
    """A later sweep: each lambda_k in turn re-picked for the best prefix's score, the others as they are."""
    changed, steps, previous = False, [], soups.base  # previous: Theta_(k-1) of the lambdas picked so far
    for k, group in enumerate(soups.groups):
        tried = {lam: _best_prefix(soups, (*picked[:k], lam, *picked[k + 1 :]), k, previous) for lam in grid}
        best = picked[k]
        for lam in grid:  # ascending: among values strictly better than the current one, a tie keeps the smaller
            if tried[lam] > tried[best]:
                best = lam
        changed |= best != picked[k]
        picked = (*picked[:k], best, *picked[k + 1 :])
        steps.append(AscentStep(sweep, group.factor, "best prefix", tried, best))
        if k + 1 < len(soups.groups):
            previous = soups.fold(dict(previous), picked[: k + 1])
    return picked, changed, steps


def _best_prefix(soups: _Soups, lambdas: tuple[float, ...], k: int, previous: Soup) -> float:
    """The best score among the prefixes of ``lambdas``, which differ from the soups picked from factor k on.

    The prefixes before k are known; from k, Theta_k..Theta_K are folded from Theta_(k-1) (``previous``)
    unless every one of them was scored before.
    """
    prefixes = [lambdas[: n + 1] for n in range(len(lambdas))]
    if any(soups.known(prefix) is None for prefix in prefixes[k:]):
        soup = dict(previous)
        for prefix in prefixes[k:]:
            soup = soups.fold(soup, prefix)
            soups.scored(prefix, soup)
    return max(soups.score(soups.point(prefix)) for prefix in prefixes)


def choose(points: Sequence[GridPoint], metric: ValidationMetric) -> GridPoint:
    """The best point on validation; ties go to fewer factors, then the smaller lambda."""
    ordered = sorted(points, key=lambda p: (p.n, p.lam))
    best = ordered[0]
    for point in ordered[1:]:
        if accuracy(point.val, metric) > accuracy(best.val, metric):
            best = point
    return best


def factor_merges(
    merger: SearchableMerger, theta0: Path, groups: Sequence[FactorGroup], folder: Path, fold_lora: bool
) -> list[Path]:
    """mean_k of every factor in float64 files under ``folder``, reading each input once (one factor's at a time)."""
    paths = [folder / f"factor-{group.factor}.safetensors" for group in groups]
    with MergeInputs.open([theta0, *(m for g in groups for m in g.members)], fold_lora) as inputs:
        entries = inputs.layout.entries
        layout = TensorLayout({name: (shape, "F64") for name, (shape, code) in entries.items() if _floating(code)})
        with ExitStack() as stack:
            writers = [stack.enter_context(CheckpointWriter(path, layout, "factor-merge")) for path in paths]
            inputs.per_factor(merger.factor_tensor, theta0, groups, writers)
    return paths


def fold_in(merger: SearchableMerger, soup: Soup, factor: Path) -> Soup:
    """Theta_k in place of Theta_(k-1) in ``soup``, tensor by tensor, in the checkpoints' dtypes; ``soup`` returned.

    Integer buffers stay theta_0's. The tensors replaced are not modified: a shallow copy of a soup branches.
    """
    with TensorFileReader(factor) as merged:
        for name in merged.names():
            soup[name] = merger.fold(soup[name], merged.read(name), soup[name].dtype).to(soup[name].dtype)
    return soup


def running_soups(mergers: Sequence[SearchableMerger], theta0: TensorSource, factors: Sequence[Path]) -> Iterator[Soup]:
    """Theta_1..Theta_K, factor k folded by ``mergers[k]`` (its lambda); one soup held, replaced tensor by tensor."""
    soup = theta0_soup(theta0)
    for merger, path in zip(mergers, factors, strict=True):
        yield fold_in(merger, soup, path)


def theta0_soup(theta0: TensorSource) -> Soup:
    return {name: theta0.read(name, None) for name in theta0.layout.entries}


def search_soups(
    merger: SearchableMerger,
    theta0: Path,
    groups: Sequence[FactorGroup],
    spec: SearchSpec,
    score: StateScorer,
    folder: Path,
    fold_lora: bool,
) -> tuple[SoupSearch, list[Path]]:
    """Score soups on validation as ``spec.mode`` says and choose; also the factor merges, to write the chosen soups."""
    factors = factor_merges(merger, theta0, groups, folder, fold_lora)
    with MergeInputs.open([theta0], fold_lora) as inputs:
        soups = _Soups(merger, groups, factors, theta0_soup(inputs.sources[theta0]), score, spec.metric)
        return SEARCHES[spec.mode].run(soups, spec), factors


def _floating(code: str) -> bool:
    return DTYPES[code].is_floating_point
