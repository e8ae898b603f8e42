"""The recursive merge's lambda and N chosen on the validation split: a grid, built incrementally.

Each factor's merge (mean_k: the within-factor step on its replicas) does not depend on lambda, so it
is computed once, in one pass over the inputs (every member read once), and kept in float64 files.
For each lambda the running soups then follow the recursion itself, Theta_k from Theta_(k-1) as
stored and mean_k (``SearchableMerger.fold``): K reads of factor merges per lambda, not K^2 * M reads
of members. Every grid point is scored on validation; the test split is never seen. The soups written
for the chosen lambda are the ones scored, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltsoups.checkpoint import CheckpointWriter
from ltsoups.contracts import FactorGroup, SearchableMerger, ValidationMetric
from ltsoups.evaluation import Scores
from ltsoups.io.safetensors import DTYPES, TensorFileReader, TensorLayout
from ltsoups.merging import MergeInputs, TensorSource

StateScorer = Callable[[Mapping[str, torch.Tensor]], Scores]
"""Validation scores of a model's tensors (a soup held in memory)."""


def accuracy(scores: Scores, metric: ValidationMetric) -> float:
    """The ``metric`` accuracy of ``scores``; a clear error when the split has no class of that group."""
    value = scores.headline().get(metric.value)
    if value is None:
        raise ValueError(
            f"no {metric.value} accuracy to choose by: the validation split has no {metric.value}-shot class"
        )
    return value


@dataclass(frozen=True)
class GridPoint:
    """One soup of the grid: lambda (the merger's convention), the factors merged, its validation scores."""

    lam: float
    keep_previous: float
    """lambda as the weight on Theta_(k-1) (the paper's convention), whatever side the config's lambda weighs."""
    n: int
    """The paper's N: factors 2^0..2^N merged (the running soup after factor ``upto_factor``)."""
    upto_factor: int
    val: Scores

    def as_json(self) -> dict[str, Any]:
        return {
            "lambda": self.lam,
            "keep_previous": self.keep_previous,
            "N": self.n,
            "upto_factor": self.upto_factor,
            "val": self.val.headline(),
        }


@dataclass(frozen=True)
class SoupSearch:
    """Every grid point's validation scores, and the one chosen."""

    metric: ValidationMetric
    points: tuple[GridPoint, ...]
    chosen: GridPoint

    def score(self, point: GridPoint) -> float:
        return accuracy(point.val, self.metric)

    def at(self, lam: float) -> list[GridPoint]:
        """The running soups of one lambda, in factor order."""
        return [point for point in self.points if point.lam == lam]

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric.value,
            "rule": "highest validation score; ties go to the smaller N, then the smaller lambda",
            "chosen": self.chosen.as_json(),
            "grid": [point.as_json() for point in self.points],
        }


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


def running_soups(
    merger: SearchableMerger, theta0: TensorSource, factors: Sequence[Path]
) -> Iterator[dict[str, torch.Tensor]]:
    """Theta_1..Theta_K of one lambda, each from the previous one and mean_k, in the checkpoints' dtypes.

    One soup is held at a time (it is replaced tensor by tensor); integer buffers come from theta_0.
    """
    soup = {name: theta0.read(name, None) for name in theta0.layout.entries}
    for path in factors:
        with TensorFileReader(path) as factor:
            for name in factor.names():
                soup[name] = merger.fold(soup[name], factor.read(name), soup[name].dtype).to(soup[name].dtype)
        yield soup


def search_grid(
    merger: SearchableMerger,
    theta0: Path,
    groups: Sequence[FactorGroup],
    lambdas: Sequence[float],
    metric: ValidationMetric,
    score: StateScorer,
    folder: Path,
    fold_lora: bool,
) -> tuple[SoupSearch, list[Path]]:
    """Score every (lambda, N) on validation and choose; also the factor merges, to write the chosen soups."""
    factors = factor_merges(merger, theta0, groups, folder, fold_lora)
    points = []
    with MergeInputs.open([theta0], fold_lora) as inputs:
        base = inputs.sources[theta0]
        for lam in lambdas:
            candidate = merger.with_lambda(lam)
            for n, soup in enumerate(running_soups(candidate, base, factors)):
                points.append(GridPoint(lam, candidate.keep_previous, n, groups[n].factor, score(soup)))
    return SoupSearch(metric, tuple(points), choose(points, metric)), factors


def _floating(code: str) -> bool:
    return DTYPES[code].is_floating_point
