"""Merger configuration (a merger naming another as its within-factor step) and the greedy soup, by hand."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from tiny_config import validate_config

from ltsoups.checkpoint import save_checkpoint
from ltsoups.config import ConfigError
from ltsoups.contracts import FactorGroup, ValidationMetric
from ltsoups.merging import MergeInputs, TensorCollector
from ltsoups.plugins.mergers import GreedySoupMerger, GreedySoupParams, RecursiveMerger
from ltsoups.plugins.task_vectors import TiesMerger


def merger_config(merger: dict) -> dict:
    return {"merge": {"merger": merger}}


def test_a_within_factor_step_is_a_plugin_spec_checked_by_its_own_params() -> None:
    config = validate_config(
        merger_config(
            {"name": "recursive", "params": {"lambda": 0.5, "within": {"name": "ties", "params": {"density": 0.3}}}}
        )
    )
    merger = RecursiveMerger(config.merge.merger.params)
    assert isinstance(merger.within, TiesMerger) and merger.within.params.density == 0.3
    dumped = config.model_dump(mode="json")["merge"]["merger"]["params"]
    assert dumped["within"] == {"name": "ties", "params": {"density": 0.3, "scale": 1.0}}


@pytest.mark.parametrize(
    ("within", "location", "message"),
    [
        (
            {"name": "tie"},
            "merge.merger.params.within.name",
            "unknown merger 'tie'; installed: dare, greedy, recursive",
        ),
        (
            {"name": "ties", "params": {"density": 2}},
            "merge.merger.params.within.params.density",
            "less than or equal to 1",
        ),
        ({"name": "ties", "params": {"k": 0.2}}, "merge.merger.params.within.params.k", "unknown key"),
        ({"name": "greedy"}, "merge.merger.params.within", "chooses on the validation split and cannot be a within"),
    ],
)
def test_a_bad_within_factor_step_names_its_field(within: dict, location: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(merger_config({"name": "recursive", "params": {"within": within}}))
    (issue,) = info.value.issues
    assert issue.location == location
    assert message in str(issue)


# ---------------------------------------------------------------------------------------- greedy soup


class DistanceScorer:
    """A validation stand-in with a known optimum: a soup scores -|w - target| (the soup merged for real)."""

    def __init__(self, target: float) -> None:
        self.target = target

    def score(self, weights: Sequence[tuple[Path, float]], metric: ValidationMetric) -> float:
        assert metric is ValidationMetric.BALANCED
        with MergeInputs.open([path for path, _ in weights]) as inputs:
            collector = TensorCollector(inputs.layout)
            inputs.weighted_sums([list(weights)], [collector])
        return -abs(collector.tensors["w"].item() - self.target)


@pytest.fixture
def members(tmp_path: Path) -> list[FactorGroup]:
    paths = []
    for value in (5.0, 3.0, 9.0, 4.0):
        paths.append(tmp_path / f"m{int(value)}.safetensors")
        save_checkpoint(paths[-1], {"w": torch.tensor([value], dtype=torch.float64)}, kind="member")
    return [FactorGroup(1, tuple(paths[:2])), FactorGroup(2, tuple(paths[2:]))]


def test_greedy_soup_by_hand(members: list[FactorGroup], tmp_path: Path) -> None:
    m5, m3, m9, m4 = (m for g in members for m in g.members)
    # Alone, against 6.5: 5 -> -1.5, 3 -> -3.5, 9 -> -2.5, 4 -> -2.5; ranked 5, 9, 4 (a tie keeps plan order), 3.
    # Soup {5, 9} = 7 -> -0.5: kept. {5, 9, 4} = 6 -> -0.5: not better, not kept. {5, 9, 3} = 5.67: not kept.
    selection = GreedySoupMerger(GreedySoupParams()).select(
        tmp_path / "theta0.safetensors", members, DistanceScorer(6.5)
    )
    assert selection.weights == [(m5, 0.5), (m9, 0.5)]
    record = selection.record
    assert [entry["member"] for entry in record["ranked"]] == [str(m5), str(m9), str(m4), str(m3)]
    assert [(entry["member"], entry["kept"]) for entry in record["tried"]] == [
        (str(m9), True),
        (str(m4), False),
        (str(m3), False),
    ]
    assert record["kept"] == [str(m5), str(m9)] and record["val_score"] == pytest.approx(-0.5)


def test_greedy_soup_keeps_only_strict_improvements(members: list[FactorGroup], tmp_path: Path) -> None:
    # Against 6: 5 -> -1 is best; {5, 4} = 4.5, {5, 3} = 4, {5, 9} = 7 -> -1, equal to the best: not kept.
    selection = GreedySoupMerger(GreedySoupParams()).select(
        tmp_path / "theta0.safetensors", members, DistanceScorer(6.0)
    )
    assert selection.weights == [(members[0].members[0], 1.0)]


# ------------------------------------------------------------------------------------------- search


def test_the_search_is_configured_with_the_recursive_merger_and_a_grid_of_lambdas() -> None:
    search = validate_config({}).merge.search
    assert (search.enabled, search.mode.value, search.lambdas, search.metric.value, search.sweeps) == (
        False,
        "lambda-n",
        tuple(k / 10 for k in range(1, 10)),
        "balanced",
        1,
    )
    config = {"merge": {"merger": {"name": "uniform"}, "search": {"enabled": True}}}
    with pytest.raises(
        ConfigError, match=r"searches the recursive merger's lambda and N, but merge\.merger\.name is 'uniform'"
    ):
        validate_config(config)
    for lambdas, message in (
        ([0.5, 1.5], r"every lambda must lie in \[0, 1\], got \[1.5\]"),
        ([0.3, 0.3], "each lambda once"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_config({"merge": {"search": {"lambdas": lambdas}}})


@pytest.mark.parametrize(
    ("search", "message"),
    [
        (
            {"mode": "per-layer"},
            "merge.search.mode: 'per-layer' is not allowed: Input should be 'lambda-n' or 'per-factor'",
        ),
        ({"mode": "per-factor", "sweeps": 0}, "merge.search.sweeps: 0 is not allowed: Input should be greater than"),
        ({"sweeps": 3}, "merge.search: sweeps: 3 counts the per-factor ascent's sweeps, but mode is lambda-n"),
    ],
)
def test_a_bad_search_mode_names_the_field_and_what_is_allowed(search: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config({"merge": {"search": search}})
    assert validate_config({"merge": {"search": {"mode": "per-factor", "sweeps": 3}}}).merge.search.sweeps == 3
