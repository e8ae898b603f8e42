"""The soup search on a tiny world of its own: a linear classifier's weights merged, scored on a fixed
validation set. The lambdas it chooses are checked against an independent computation over every
combination of lambdas (the running soups recomputed by hand from the checkpoints), per mode."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from ltsoups.checkpoint import save_checkpoint
from ltsoups.contracts import FactorGroup, ValidationMetric
from ltsoups.data.stats import ShotThresholds
from ltsoups.evaluation import Scores, score_predictions
from ltsoups.merge_search import LambdaNSearch, PerFactorSearch, running_soups, search_soups
from ltsoups.merging import MergeInputs
from ltsoups.plugins.mergers import RecursiveMerger, RecursiveParams
from ltsoups.settings import SearchMode

CLASSES, FEATURES, VAL = 6, 5, 240
TRAIN_COUNTS = np.array([300, 150, 60, 40, 10, 5])  # two classes of each shot group
GRID = (0.2, 0.5, 0.8)
Lambdas = tuple[float, ...]


class Spec:
    """What the config's merge.search gives the search."""

    def __init__(self, mode: SearchMode, sweeps: int = 1) -> None:
        self.mode, self.sweeps, self.lambdas, self.metric = mode, sweeps, GRID, ValidationMetric.BALANCED


class World:
    """theta_0 and two replicas per factor of a linear classifier, and a validation set it is scored on."""

    def __init__(self, root: Path, factors: tuple[int, ...], seed: int, unmoved: tuple[int, ...] = ()) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(VAL, FEATURES, generator=generator)
        target = torch.randn(CLASSES, FEATURES, generator=generator)
        self.labels = (self.features @ target.T).argmax(dim=1).numpy()
        theta0 = target + 1.5 * torch.randn(CLASSES, FEATURES, generator=generator)
        self.theta0 = save_checkpoint(root / "theta0.safetensors", self._tensors(theta0), "theta0").path
        self.groups = []
        for factor in factors:  # each factor's replicas pulled towards the target by a different amount
            pull = torch.rand((), generator=generator).item()
            members = []
            for replica in range(2):
                weight = theta0 + pull * (target - theta0) + torch.randn(CLASSES, FEATURES, generator=generator)
                weight = theta0 if factor in unmoved else weight
                path = root / f"f{factor}-r{replica}.safetensors"
                members.append(save_checkpoint(path, self._tensors(weight), "member").path)
            self.groups.append(FactorGroup(factor, tuple(members)))
        self.scored: list[str] = []
        """what the search scored, in order (each soup's digest)"""

    @staticmethod
    def _tensors(weight: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"weight": weight.float(), "bias": torch.zeros(CLASSES), "steps": torch.tensor([7])}

    def scores(self, state: Mapping[str, torch.Tensor]) -> Scores:
        logits = self.features @ state["weight"].double().T.float() + state["bias"]
        return score_predictions(logits.argmax(dim=1).numpy(), self.labels, TRAIN_COUNTS, ShotThresholds())

    def score(self, state: Mapping[str, torch.Tensor]) -> Scores:
        """The scorer the search is given: notes what it scored."""
        self.scored.append(digest(state))
        return self.scores(state)

    def search(self, merger: RecursiveMerger, spec: Spec, folder: Path):
        folder.mkdir()
        return search_soups(merger, self.theta0, self.groups, spec, self.score, folder, fold_lora=False)

    def by_hand(self, keep: Mapping[float, float]) -> dict[Lambdas, tuple[dict[str, torch.Tensor], float]]:
        """Every prefix of every combination of lambdas: its soup, folded by hand, and its balanced accuracy."""
        with MergeInputs.open([self.theta0, *(m for g in self.groups for m in g.members)]) as inputs:
            read = {path: {name: source.read(name, None) for name in ("weight", "bias", "steps")}
                    for path, source in inputs.sources.items()}  # fmt: skip
            means = []
            for group in self.groups:
                means.append({})
                for name in ("weight", "bias"):
                    total = torch.zeros(read[self.theta0][name].shape, dtype=torch.float64)
                    for member in group.members:
                        total.add_(read[member][name])
                    means[-1][name] = total.div_(len(group.members))
            soups: dict[Lambdas, tuple[dict[str, torch.Tensor], float]] = {}
            for lambdas in itertools.product(GRID, repeat=len(self.groups)):
                soup = dict(read[self.theta0])
                for k, lam in enumerate(lambdas):
                    soup = dict(soup)
                    for name in ("weight", "bias"):
                        previous = soup[name].to(torch.float64, copy=True)
                        soup[name] = previous.mul_(keep[lam]).add_(means[k][name], alpha=1 - keep[lam]).float()
                    soups[lambdas[: k + 1]] = (soup, self.scores(soup).balanced)
        return soups


def digest(state: Mapping[str, torch.Tensor]) -> str:
    sha = hashlib.sha256()
    for name in sorted(state):
        sha.update(name.encode() + str(state[name].dtype).encode() + state[name].contiguous().numpy().tobytes())
    return sha.hexdigest()


def best_prefix(scores: Mapping[Lambdas, float], lambdas: Lambdas) -> tuple[int, float]:
    """N and score of the best prefix of ``lambdas``; ties go to the smaller N."""
    values = [scores[lambdas[: n + 1]] for n in range(len(lambdas))]
    return values.index(max(values)), max(values)


def greedy(scores: Mapping[Lambdas, float], factors: int) -> Lambdas:
    picked: Lambdas = ()
    for _ in range(factors):
        picked += (max(GRID, key=lambda lam: (scores[(*picked, lam)], -lam)),)
    return picked


def ascent(scores: Mapping[Lambdas, float], picked: Lambdas, sweeps: int) -> tuple[Lambdas, list[dict]]:
    """Later sweeps: each lambda re-picked for the best prefix, kept unless another is strictly better; also
    what each step scored (lambda -> best prefix)."""
    steps = []
    for _ in range(sweeps - 1):
        before = picked
        for k in range(len(picked)):
            trial = {lam: best_prefix(scores, (*picked[:k], lam, *picked[k + 1 :]))[1] for lam in GRID}
            steps.append(trial)
            better = [lam for lam in GRID if trial[lam] > trial[picked[k]]]
            if better:
                best = max(trial[lam] for lam in better)
                picked = (*picked[:k], min(lam for lam in better if trial[lam] == best), *picked[k + 1 :])
        if picked == before:
            break
    return picked, steps


@pytest.fixture(params=["previous", "new"])
def merger(request: pytest.FixtureRequest) -> RecursiveMerger:
    """lambda on either side: with weights=new, lambda weighs mean_k and the paper's lambda is 1 - lambda."""
    return RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.7, "weights": request.param}))


def keep_of(merger: RecursiveMerger) -> dict[float, float]:
    return {lam: lam if merger.params.weights.value == "previous" else 1.0 - lam for lam in GRID}


def test_per_factor_picks_each_lambda_greedily_in_factor_order(tmp_path: Path, merger: RecursiveMerger) -> None:
    world = World(tmp_path, factors=(1, 2), seed=0)
    by_hand = world.by_hand(keep_of(merger))
    scores = {lambdas: score for lambdas, (_, score) in by_hand.items()}
    search, factors = world.search(merger, Spec(SearchMode.PER_FACTOR), tmp_path / "search")

    assert isinstance(search, PerFactorSearch)
    expected = greedy(scores, 2)
    n, best = best_prefix(scores, expected)
    assert search.lambdas == expected and search.chosen.lambdas == expected[: n + 1]
    assert search.chosen.val.balanced == best == search.score(search.chosen)
    assert search.chosen.keep_previous == tuple(keep_of(merger)[lam] for lam in expected[: n + 1])
    # Every lambda of factor 1, then every lambda of factor 2 after the one picked: 2 x 3 soups, each scored once.
    assert [point.lambdas for point in search.points] == [(lam,) for lam in GRID] + [(expected[0], lam) for lam in GRID]
    assert all(point.val.balanced == scores[point.lambdas] for point in search.points)
    assert search.cost.model_dump() == {"factor_merges": 2, "folds": 6, "val_passes": 6} and len(world.scored) == 6
    assert best == max(scores.values())  # in this world the greedy choice is the best of all 9 combinations

    # The running soups written fold with the lambdas chosen: each the soup scored, bit for bit, and the soup by hand.
    with MergeInputs.open([world.theta0]) as inputs:
        mergers = [merger.with_lambda(lam) for lam in search.lambdas]
        written = [digest(soup) for soup in running_soups(mergers, inputs.sources[world.theta0], factors)]
    scored = dict(zip([point.lambdas for point in search.points], world.scored, strict=True))
    assert written == [scored[point.lambdas] for point in search.running()]
    assert written == [digest(by_hand[expected[: k + 1]][0]) for k in range(2)]


def test_later_sweeps_climb_the_best_prefix_until_no_lambda_changes(tmp_path: Path, merger: RecursiveMerger) -> None:
    world = World(tmp_path, factors=(1, 2, 4), seed=1)  # a world where the sweeps after the first find better
    scores = {lambdas: score for lambdas, (_, score) in world.by_hand(keep_of(merger)).items()}
    search, _ = world.search(merger, Spec(SearchMode.PER_FACTOR, sweeps=5), tmp_path / "search")

    first = greedy(scores, 3)
    expected, later = ascent(scores, first, sweeps=5)
    n, best = best_prefix(scores, expected)
    assert best > best_prefix(scores, first)[1]  # this world is one where the later sweeps find a better soup
    assert search.lambdas == expected and search.chosen.lambdas == expected[: n + 1]
    assert search.score(search.chosen) == best <= max(scores.values())
    assert [step.sweep for step in search.steps][:3] == [1, 1, 1] and search.steps[-1].sweep <= 5
    last_sweep = [step for step in search.steps if step.sweep == search.steps[-1].sweep]
    assert all(step.picked == lam for step, lam in zip(last_sweep, expected, strict=True))
    assert [step.tried for step in search.steps[3:]] == later  # the best prefix, each factor's lambda tried
    assert all(step.objective == "best prefix" for step in search.steps[3:])
    # A soup is scored once however often the ascent meets it; none is scored that the search does not list.
    assert len({point.lambdas for point in search.points}) == len(search.points) == search.cost.val_passes
    assert len(world.scored) == search.cost.val_passes
    assert all(point.val.balanced == scores[point.lambdas] for point in search.points)
    assert search.as_json()["lambdas"] == list(expected) and search.record()["lambdas"] == list(expected)


def test_lambda_n_scores_every_lambda_and_n_and_chooses_the_best(tmp_path: Path, merger: RecursiveMerger) -> None:
    world = World(tmp_path, factors=(1, 2), seed=0)
    scores = {lambdas: score for lambdas, (_, score) in world.by_hand(keep_of(merger)).items()}
    search, _ = world.search(merger, Spec(SearchMode.LAMBDA_N), tmp_path / "search")

    assert isinstance(search, LambdaNSearch)
    grid = {(lam, n): scores[(lam,) * (n + 1)] for lam in GRID for n in range(2)}
    lam, n = max(grid, key=lambda point: (grid[point], -point[1], -point[0]))
    assert (search.chosen.lam, search.chosen.n) == (lam, n) and search.lambdas == (lam, lam)
    assert search.cost.model_dump() == {"factor_merges": 2, "folds": 6, "val_passes": 6}
    assert search.as_json()["chosen"] == {
        "lambda": lam,
        "keep_previous": keep_of(merger)[lam],
        "N": n,
        "upto_factor": (1, 2)[n],
        "val": search.chosen.val.headline(),
    }


def test_ties_go_to_the_smaller_lambda_and_a_later_sweep_keeps_the_lambda_it_has(
    tmp_path: Path, merger: RecursiveMerger
) -> None:
    # Factor 1's replicas are theta_0 itself: every lambda folds it into the same soup.
    world = World(tmp_path, factors=(1, 2), seed=0, unmoved=(1,))
    scores = {lambdas: score for lambdas, (_, score) in world.by_hand(keep_of(merger)).items()}
    search, _ = world.search(merger, Spec(SearchMode.PER_FACTOR, sweeps=3), tmp_path / "search")

    first, second = search.steps[0], next(step for step in search.steps if step.sweep == 2 and step.factor == 1)
    assert len(set(first.tried.values())) == 1 and first.picked == GRID[0]
    assert len(set(second.tried.values())) == 1 and second.picked == GRID[0]
    assert search.lambdas == ascent(scores, greedy(scores, 2), sweeps=3)[0]
