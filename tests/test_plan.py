import json
from pathlib import Path

import numpy as np
import pytest

from ltsoups.data.profiles import exponential_counts
from ltsoups.plan import Manifest, Plan, PlanError, member_id, summarise, write_plan
from ltsoups.plugins.samplers import (
    FixedRatioParams,
    FixedRatioSampler,
    FullDataParams,
    FullDataSampler,
    ProgressiveParams,
    ProgressiveSubsampler,
)
from ltsoups.workspace import Workspace

CIFAR100_LT = exponential_counts(100, 500, 100)
# Subset sizes of the authors' code for CIFAR-100-LT rho=100 (official-code-facts.md, section 4).
OFFICIAL_SIZES = {1: 500, 2: 949, 4: 1705, 8: 2926, 16: 4777, 32: 7296, 64: 9959}


def progressive(rounds: int, replicas: int = 2, shared: bool = False) -> ProgressiveSubsampler:
    return ProgressiveSubsampler(ProgressiveParams(rounds=rounds, replicas=replicas, shared_subset=shared))


def test_cifar100_lt_counts_match_the_published_profile() -> None:
    assert CIFAR100_LT.sum() == 10_847
    assert (CIFAR100_LT[0], CIFAR100_LT[-1]) == (500, 5)


def test_cap_rule_gives_the_official_subset_sizes_and_shares() -> None:
    draws = progressive(6).draws(CIFAR100_LT, seed=0)
    rows = summarise(draws, CIFAR100_LT)
    assert [row.factor for row in rows] == [1, 2, 4, 8, 16, 32, 64]
    assert {row.factor: row.size for row in rows} == OFFICIAL_SIZES
    assert {row.factor: row.cap for row in rows}[32] == 160
    assert {row.factor: row.share for row in rows}[32] == 67.26
    for row in rows:
        assert row.rho <= row.factor and row.members == 2


def test_every_class_keeps_min_of_count_and_cap() -> None:
    for draw in progressive(3).draws(CIFAR100_LT, seed=3):
        assert draw.class_counts == np.minimum(CIFAR100_LT, 5 * draw.factor).tolist()
        for positions, count in zip(draw.positions, CIFAR100_LT, strict=True):
            assert len(set(positions.tolist())) == len(positions)  # without replacement
            assert positions.min() >= 0 and positions.max() < count


def test_replicas_draw_their_own_subsets_unless_shared() -> None:
    own = progressive(2).draws(CIFAR100_LT, seed=0)
    shared = progressive(2, shared=True).draws(CIFAR100_LT, seed=0)
    assert any(not np.array_equal(a, b) for a, b in zip(own[2].positions, own[3].positions, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(shared[2].positions, shared[3].positions, strict=True))
    assert [member_id(d.factor, d.replica) for d in shared] == ["f1-r0", "f1-r1", "f2-r0", "f2-r1", "f4-r0", "f4-r1"]


def test_a_members_subset_does_not_depend_on_the_rest_of_the_plan() -> None:
    small = {member_id(d.factor, d.replica): d for d in progressive(2).draws(CIFAR100_LT, seed=1)}
    large = {member_id(d.factor, d.replica): d for d in progressive(4, replicas=3).draws(CIFAR100_LT, seed=1)}
    for key, draw in small.items():
        assert all(np.array_equal(a, b) for a, b in zip(draw.positions, large[key].positions, strict=True))


def test_other_samplers() -> None:
    full = FullDataSampler(FullDataParams(replicas=3)).draws(CIFAR100_LT, seed=0)
    assert [d.size for d in full] == [10_847] * 3
    fixed = FixedRatioSampler(FixedRatioParams(ratio=8, replicas=2)).draws(CIFAR100_LT, seed=0)
    assert [d.size for d in fixed] == [2926, 2926]


def _labels(counts: np.ndarray, seed: int) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def test_manifests_are_byte_identical_for_identical_inputs(tmp_path: Path) -> None:
    labels = _labels(CIFAR100_LT, 0)
    spec = {"name": "progressive", "params": {"rounds": 3, "replicas": 2}}
    first = write_plan(Workspace(tmp_path / "a"), progressive(3), spec, labels, 100, "cifar", 0)
    second = write_plan(Workspace(tmp_path / "b"), progressive(3), spec, labels, 100, "cifar", 0)
    assert len(first.manifests) == 8
    for member, path in first.manifests.items():
        assert path.read_bytes() == second.manifests[member].read_bytes()
    other_seed = write_plan(Workspace(tmp_path / "c"), progressive(3), spec, labels, 100, "cifar", 1)
    assert other_seed.manifests["f2-r0"].read_bytes() != first.manifests["f2-r0"].read_bytes()


def test_manifest_records_its_subset_and_hash(tmp_path: Path) -> None:
    labels = _labels(CIFAR100_LT, 0)
    files = write_plan(Workspace(tmp_path), progressive(1), {"name": "progressive"}, labels, 100, "cifar", 7)
    manifest = Manifest.read(files.manifests["f2-r1"])
    assert (manifest.factor, manifest.replica, manifest.seed, manifest.cap) == (2, 1, 7, 10)
    assert manifest.size == len(manifest.indices) == 949
    assert tuple(np.bincount(labels[list(manifest.indices)], minlength=100).tolist()) == manifest.class_counts
    plan = Plan.read(files.path)
    assert plan == files.plan
    assert [m.member for m in plan.members] == ["f1-r0", "f1-r1", "f2-r0", "f2-r1"]
    assert [m.manifest_sha256 for m in plan.members][3] == manifest.content_sha256


def test_an_edited_manifest_is_detected(tmp_path: Path) -> None:
    labels = _labels(CIFAR100_LT, 0)
    path = write_plan(Workspace(tmp_path), progressive(0), {"name": "progressive"}, labels, 100, "cifar", 0).manifests[
        "f1-r0"
    ]
    manifest = json.loads(path.read_text())
    manifest["indices"][0] += 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(PlanError, match="content_sha256"):
        Manifest.read(path)


def test_factors_are_labelled_as_powers_of_two_only_when_they_are() -> None:
    from ltsoups.plan import factor_label
    from ltsoups.training.budget import factor_name

    assert [factor_label(f) for f in (1, 2, 32, 10, 12)] == ["2^0", "2^1", "2^5", "10", "12"]
    assert factor_name(10) == "factor 10"  # fixed-ratio at ratio 10 (it read "factor 2^3")
