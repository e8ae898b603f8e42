"""Contract tests over every installed plugin of every kind, third parties' included, on tiny CPU inputs.

Each kind's promises (contracts.py) are checked for whatever the registry finds, so a new plugin is
tested the moment it is installed. A kind without a behavioural check here fails, unless UNCHECKED_REASONS
says where else it is tested; a check runs for the plugins it applies to only (no skip by design).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from ltsoups.contracts import (
    FactorGroup,
    FactorTensors,
    PerTensorMerger,
    Plugin,
    PluginParams,
    SelectingMerger,
    SubsetDraw,
    ValidationMetric,
)
from ltsoups.registry import PluginKind, installed_registry

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
REGISTRY = installed_registry()
PLUGINS = [pytest.param(kind, name, id=f"{kind.value}/{name}") for kind in PluginKind for name in REGISTRY.names(kind)]
CHECKED_KINDS: set[PluginKind] = set()
UNCHECKED_REASONS = {
    PluginKind.BACKBONE: "loading a backbone needs its weights (a download or a file): test_shipped_weights.py "
    "and test_timm_backbone.py load the built-ins"
}


def plugin_class(kind: PluginKind, name: str) -> type[Plugin]:
    return REGISTRY.entry(kind, name).load()


def every_plugin_of(kind: PluginKind, where: Callable[[type[Plugin]], bool] | None = None) -> pytest.MarkDecorator:
    """Parametrize a test over every installed plugin of ``kind`` it applies to (``where``), and record that the
    kind has a check."""
    CHECKED_KINDS.add(kind)
    names = [
        name
        for name in REGISTRY.names(kind)
        if has_defaults(plugin_class(kind, name)) and (where is None or where(plugin_class(kind, name)))
    ]
    return pytest.mark.parametrize("name", names)


def has_defaults(plugin: type[Plugin]) -> bool:
    """Whether ``Params()`` builds it: the checks here build plugins from their defaults (a plugin that needs a
    path or a value has its own tests, e.g. test_dataset_plugins.py)."""
    return not any(info.is_required() for info in plugin.Params.model_fields.values())


def create_with_defaults(kind: PluginKind, name: str) -> Any:
    plugin = plugin_class(kind, name)
    return plugin(plugin.Params())


# ---------------------------------------------------------------------------------- registration


def declared_built_ins(kind: PluginKind) -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    entry_points = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]
    return entry_points.get(kind.group, {})


@pytest.mark.parametrize("kind", list(PluginKind))
def test_every_built_in_pyproject_declares_is_discovered(kind: PluginKind) -> None:
    discovered = {e.name: e.target for e in REGISTRY.entries(kind) if e.distribution.startswith("ltsoups ")}
    declared = declared_built_ins(kind)
    assert len(discovered) == len(declared)
    assert discovered == declared, "installed metadata differs from pyproject.toml: run `pip install --no-deps -e .`"


def test_every_entry_point_group_is_a_plugin_kind() -> None:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    groups = {g for g in tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"] if g.startswith("ltsoups.")}
    assert groups <= {kind.group for kind in PluginKind}, "a group no PluginKind reads is never discovered"


@pytest.mark.parametrize("kind", [kind for kind in PluginKind if kind not in UNCHECKED_REASONS])
def test_every_kind_has_a_behavioural_check(kind: PluginKind) -> None:
    assert kind in CHECKED_KINDS, f"no test below checks what every {kind.singular} plugin promises"


def test_a_kind_said_to_be_checked_elsewhere_has_no_check_here() -> None:
    assert not CHECKED_KINDS & UNCHECKED_REASONS.keys(), "a stale entry of UNCHECKED_REASONS"


# --------------------------------------------------------------------------- every plugin, every kind


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation mentions, e.g. SplitPaths in ``SplitPaths | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from models_in(arg)


def params_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """``model`` and every model nested in its fields, each once."""
    seen: list[type[BaseModel]] = []
    pending = [model]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.append(current)
            for info in current.model_fields.values():
                pending.extend(models_in(info.annotation))
    yield from seen


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_params_are_strict_and_documented(kind: PluginKind, name: str) -> None:
    plugin = plugin_class(kind, name)
    assert issubclass(plugin, kind.contract)
    assert isinstance(plugin.description, str) and plugin.description.strip()
    assert issubclass(plugin.Params, PluginParams)
    lenient = [m.__name__ for m in params_models(plugin.Params) if m.model_config.get("extra") != "forbid"]
    assert lenient == [], "unknown keys must be errors, not dropped"
    undocumented = [
        f"{model.__name__}.{field}"
        for model in params_models(plugin.Params)
        for field, info in model.model_fields.items()
        if not (info.description and info.description.strip())
    ]
    assert undocumented == []


@pytest.mark.parametrize(("kind", "name"), [p for p in PLUGINS if has_defaults(plugin_class(*p.values))])
def test_defaults_build_the_plugin(kind: PluginKind, name: str) -> None:
    assert isinstance(create_with_defaults(kind, name), kind.contract)


# ------------------------------------------------------------------------------------------ losses

LOSS_COUNTS = {
    "two classes": [900, 3],
    "one sample each": [1, 1, 1],
    "long tail": [5000, 800, 120, 20, 4, 1],
    "random 40": np.random.default_rng(0).integers(1, 1000, size=40).tolist(),
}
# Losses whose definition reduces to cross-entropy when every class has the same count, with params to try.
CROSS_ENTROPY_UNDER_A_UNIFORM_PRIOR = {
    "logit-adjusted": [{}, {"tau": 2.5}],  # adds tau * log(1/K) to every logit: softmax unchanged
    "class-balanced": [{}, {"beta": 0.9}],  # equal counts, equal weights
    "cross-entropy": [{}],
}


@every_plugin_of(PluginKind.LOSS)
@pytest.mark.parametrize("counts", LOSS_COUNTS.values(), ids=LOSS_COUNTS.keys())
def test_loss_is_finite_and_differentiable(name: str, counts: list[int]) -> None:
    loss = create_with_defaults(PluginKind.LOSS, name).build(np.array(counts))
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(64, len(counts), generator=generator) * 5).requires_grad_()
    targets = torch.randint(0, len(counts), (64,), generator=generator)
    value = loss(logits, targets)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "params"),
    [(name, params) for name, variants in CROSS_ENTROPY_UNDER_A_UNIFORM_PRIOR.items() for params in variants],
)
@pytest.mark.parametrize(("num_classes", "count"), [(2, 1), (5, 37), (40, 1000)])
def test_loss_is_cross_entropy_under_a_uniform_prior(
    name: str, params: dict[str, float], num_classes: int, count: int
) -> None:
    loss = REGISTRY.create(PluginKind.LOSS, name, params).build(np.full(num_classes, count))
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(32, num_classes, generator=generator) * 3
    targets = torch.randint(0, num_classes, (32,), generator=generator)
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets))


# ----------------------------------------------------------------------------------------- mergers

# (factor, replicas) of each group, in ascending factor order as the merge stage passes them.
MERGE_LAYOUTS = {
    "one member": [(1, 1)],
    "N=2, M=2": [(1, 2), (2, 2), (4, 2)],
    "uneven replicas": [(1, 3), (4, 1), (16, 2)],
}


def merger_inputs(layout: list[tuple[int, int]], folder: Path) -> tuple[Path, list[FactorGroup]]:
    """Paths that are never opened: a merger's weights are arithmetic on the layout."""
    theta0 = folder / "theta0.safetensors"
    groups = [
        FactorGroup(factor, tuple(folder / f"f{factor}-r{r}.safetensors" for r in range(replicas)))
        for factor, replicas in layout
    ]
    return theta0, groups


def tensor_inputs(layout: list[tuple[int, int]], seed: int = 0) -> tuple[torch.Tensor, list[FactorTensors]]:
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(6, 5, generator=generator)
    groups = [
        FactorTensors(factor, tuple(base + torch.randn(6, 5, generator=generator) for _ in range(replicas)))
        for factor, replicas in layout
    ]
    return base, groups


def merges_per_tensor(merger: type[Plugin]) -> bool:
    return issubclass(merger, PerTensorMerger)


def sums_with_its_defaults(merger: type[Plugin]) -> bool:
    """A per-tensor merger whose default params make it a weighted sum of checkpoints (as_weighted_sum)."""
    if not (merges_per_tensor(merger) and has_defaults(merger)):
        return False
    theta0, groups = merger_inputs(MERGE_LAYOUTS["N=2, M=2"], Path("absent"))
    return merger(merger.Params()).as_weighted_sum(theta0, groups) is not None


@every_plugin_of(PluginKind.MERGER, where=sums_with_its_defaults)
@pytest.mark.parametrize("layout", MERGE_LAYOUTS.values(), ids=MERGE_LAYOUTS.keys())
def test_a_weighted_sum_is_an_affine_combination_of_the_inputs(
    name: str, layout: list[tuple[int, int]], tmp_path: Path
) -> None:
    merger = create_with_defaults(PluginKind.MERGER, name)
    absent = tmp_path / "absent"
    theta0, groups = merger_inputs(layout, absent)
    weights = merger.as_weighted_sum(theta0, groups)
    assert weights is not None
    assert {path for path, _ in weights} <= {theta0, *(m for g in groups for m in g.members)}
    assert math.fsum(w for _, w in weights) == pytest.approx(1.0, abs=1e-12)  # a model merged with itself is itself
    assert merger.as_weighted_sum(theta0, groups) == weights
    assert not absent.exists()


@every_plugin_of(PluginKind.MERGER, where=merges_per_tensor)
@pytest.mark.parametrize("layout", MERGE_LAYOUTS.values(), ids=MERGE_LAYOUTS.keys())
def test_a_per_tensor_merge_is_a_pure_function_of_its_tensors(name: str, layout: list[tuple[int, int]]) -> None:
    merger = create_with_defaults(PluginKind.MERGER, name)
    base, groups = tensor_inputs(layout)
    copies = [base.clone(), *(t.clone() for g in groups for t in g.members)]
    merged = merger.merge_tensor("block.weight", base, groups)
    assert merged.shape == base.shape and merged.is_floating_point() and torch.isfinite(merged).all()
    inputs = [base, *(t for g in groups for t in g.members)]
    assert all(torch.equal(a, b) for a, b in zip(inputs, copies, strict=True)), "inputs must not be modified"
    assert torch.equal(merger.merge_tensor("block.weight", base, tensor_inputs(layout)[1]), merged)  # same bits
    prefixes = merger.merge_prefixes("block.weight", base, groups)
    assert len(prefixes) == len(groups)
    for k, prefix in enumerate(prefixes, start=1):
        assert torch.equal(prefix, merger.merge_tensor("block.weight", base, groups[:k]))


@every_plugin_of(PluginKind.MERGER, where=merges_per_tensor)
@pytest.mark.parametrize("layout", MERGE_LAYOUTS.values(), ids=MERGE_LAYOUTS.keys())
def test_members_equal_to_theta0_merge_to_theta0(name: str, layout: list[tuple[int, int]]) -> None:
    merger = create_with_defaults(PluginKind.MERGER, name)
    base, _ = tensor_inputs(layout)
    groups = [FactorTensors(factor, tuple(base.clone() for _ in range(replicas))) for factor, replicas in layout]
    torch.testing.assert_close(merger.merge_tensor("w", base, groups).to(base.dtype), base)


@every_plugin_of(PluginKind.MERGER, where=sums_with_its_defaults)
@pytest.mark.parametrize("layout", MERGE_LAYOUTS.values(), ids=MERGE_LAYOUTS.keys())
def test_a_weighted_sum_computed_per_tensor_is_that_sum(
    name: str, layout: list[tuple[int, int]], tmp_path: Path
) -> None:
    merger = create_with_defaults(PluginKind.MERGER, name)
    theta0, paths = merger_inputs(layout, tmp_path / "absent")
    weights = merger.as_weighted_sum(theta0, paths)
    assert weights is not None
    base, groups = tensor_inputs(layout)
    tensor_of = {theta0: base} | {
        p: t for pg, g in zip(paths, groups, strict=True) for p, t in zip(pg.members, g.members, strict=True)
    }
    expected = sum(w * tensor_of[path].double() for path, w in weights)
    torch.testing.assert_close(merger.merge_tensor("w", base, groups), expected)


class SeededScorer:
    """Scores from a fixed random draw per soup: enough to check what a selecting merger returns."""

    def score(self, weights: Sequence[tuple[Path, float]], metric: ValidationMetric) -> float:
        key = sum(hash(str(path)) % 1000 * weight for path, weight in weights)
        return float(np.random.default_rng(int(key * 1000) % 2**32).uniform(0, 100))


@every_plugin_of(PluginKind.MERGER, where=lambda merger: issubclass(merger, SelectingMerger))
@pytest.mark.parametrize("layout", MERGE_LAYOUTS.values(), ids=MERGE_LAYOUTS.keys())
def test_a_selection_is_a_soup_of_members_with_a_json_record(
    name: str, layout: list[tuple[int, int]], tmp_path: Path
) -> None:
    merger = create_with_defaults(PluginKind.MERGER, name)
    theta0, groups = merger_inputs(layout, tmp_path / "absent")
    selection = merger.select(theta0, groups, SeededScorer())
    assert selection.weights and {p for p, _ in selection.weights} <= {theta0, *(m for g in groups for m in g.members)}
    assert math.fsum(w for _, w in selection.weights) == pytest.approx(1.0, abs=1e-12)
    json.dumps(selection.record)
    assert merger.select(theta0, groups, SeededScorer()) == selection


# ---------------------------------------------------------------------------------------- samplers

SAMPLER_COUNTS = {
    "balanced": [8, 8, 8, 8, 8],
    "long tail": [500, 120, 40, 9, 3],
    "a class of one": [64, 1],
    "random 30": np.random.default_rng(0).integers(1, 400, size=30).tolist(),
}


def draw_key(draw: SubsetDraw) -> tuple[Any, ...]:
    return (draw.factor, draw.replica, draw.seed, draw.cap, tuple(p.tolist() for p in draw.positions))


@every_plugin_of(PluginKind.SAMPLER)
@pytest.mark.parametrize("counts", SAMPLER_COUNTS.values(), ids=SAMPLER_COUNTS.keys())
def test_sampler_draws_positions_within_each_class(name: str, counts: list[int]) -> None:
    class_counts = np.array(counts)
    draws = create_with_defaults(PluginKind.SAMPLER, name).draws(class_counts, 3)
    for draw in draws:
        assert isinstance(draw, SubsetDraw)
        assert len(draw.positions) == len(counts)
        for positions, count in zip(draw.positions, counts, strict=True):
            assert positions.ndim == 1 and np.issubdtype(positions.dtype, np.integer)
            assert np.all((positions >= 0) & (positions < count))
            assert np.all(np.diff(positions) > 0)  # sorted, no sample twice
            assert draw.cap is None or len(positions) <= draw.cap
    ids = [(draw.factor, draw.replica) for draw in draws]
    assert len(set(ids)) == len(ids)
    assert np.array_equal(class_counts, counts)  # the counts are not modified


@every_plugin_of(PluginKind.SAMPLER)
@pytest.mark.parametrize("counts", SAMPLER_COUNTS.values(), ids=SAMPLER_COUNTS.keys())
def test_sampler_draws_are_a_function_of_counts_and_seed(name: str, counts: list[int]) -> None:
    for seed in (0, 11):
        first = create_with_defaults(PluginKind.SAMPLER, name).draws(np.array(counts), seed)
        second = create_with_defaults(PluginKind.SAMPLER, name).draws(np.array(counts), seed)
        assert [draw_key(d) for d in first] == [draw_key(d) for d in second]


# ---------------------------------------------------------------------------------------- datasets


@every_plugin_of(PluginKind.DATASET)
def test_dataset_counts_its_classes_without_images(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative default roots (e.g. data/) point at nothing
    dataset = create_with_defaults(PluginKind.DATASET, name)
    try:
        counts = np.asarray(dataset.class_counts())
    except FileNotFoundError as err:  # an index file (a class list) is needed; its own tests generate one
        assert "not found" in str(err)
        pytest.skip(f"dataset {name!r} counts its classes from an index file on disk: {err}")
    assert counts.ndim == 1 and len(counts) >= 2
    assert np.issubdtype(counts.dtype, np.integer) and counts.min() >= 1
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------- runners


class NoEvents:
    """A follower for a batch in which nothing may happen."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"an empty batch called follower.{name}")


@every_plugin_of(PluginKind.RUNNER)
def test_runner_trains_an_empty_batch_at_no_cost(name: str) -> None:
    """Members themselves train in tests/runners/ (same bits through every runner, faults, tracking)."""
    assert create_with_defaults(PluginKind.RUNNER, name).train([], NoEvents()) == []
