"""TIES, DARE and per-tensor recursive merges, written by the streaming engine, against hand computations."""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from soups import merge_weighted

from ltsoups.checkpoint import CheckpointWriter, save_checkpoint
from ltsoups.contracts import ENTRY_SLICE, FactorGroup, PerTensorMerger
from ltsoups.io.safetensors import load_tensors
from ltsoups.merging import MergeInputs
from ltsoups.plugins.mergers import RecursiveMerger, RecursiveParams, TaskArithmeticMerger, TaskArithmeticParams
from ltsoups.plugins.task_vectors import DareMerger, DareParams, TiesMerger, TiesParams, drop_mask

BASE = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
# Task vectors chosen so every TIES step shows: trimming with a tie, elected signs, an entry of zero mass.
TAUS = [
    [4.0, -1.0, 2.0, 0.5, -3.0, 1.0],
    [-2.0, -2.0, 3.0, -0.5, 1.0, 1.0],
    [1.0, 3.0, -1.0, 0.25, -1.0, 0.0],
]


def write(path: Path, values: list[float], dtype: torch.dtype = torch.float64, **extra: torch.Tensor) -> Path:
    save_checkpoint(path, {"w": torch.tensor(values, dtype=dtype), "step": torch.tensor([3]), **extra}, kind="member")
    return path


@pytest.fixture
def task_inputs(tmp_path: Path) -> tuple[Path, list[FactorGroup]]:
    """theta_0 = BASE; factor 1 holds the first two task vectors, factor 2 the third (float64: exact sums)."""
    theta0 = write(tmp_path / "theta0.safetensors", BASE)
    members = [
        write(tmp_path / f"m{i}.safetensors", [b + t for b, t in zip(BASE, tau, strict=True)])
        for i, tau in enumerate(TAUS)
    ]
    return theta0, [FactorGroup(1, (members[0], members[1])), FactorGroup(2, (members[2],))]


def merged(merger: PerTensorMerger, theta0: Path, groups: list[FactorGroup], folder: Path, prefixes: bool = False):
    """What the engine writes for ``merger``: the merge (or every prefix's), read back."""
    targets = [folder / f"out{k}.safetensors" for k in range(len(groups) if prefixes else 1)]
    with MergeInputs.open([theta0, *(m for g in groups for m in g.members)]) as inputs, ExitStack() as stack:
        writers = [stack.enter_context(CheckpointWriter(t, inputs.layout, "soup")) for t in targets]
        inputs.per_tensor(merger, theta0, groups, writers)
    outputs = [load_tensors(target) for target in targets]
    return outputs if prefixes else outputs[0]


def plus_base(values: list[float]) -> torch.Tensor:
    return torch.tensor([b + v for b, v in zip(BASE, values, strict=True)], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------- TIES


def test_ties_by_hand(task_inputs, tmp_path: Path) -> None:
    theta0, groups = task_inputs
    # density 0.5 keeps the 3 largest |tau| of each: [4, 0, 2, 0, -3, 0], [-2, -2, 3, 0, 0, 0] and, the third
    # largest of [1, 3, 1, .25, 1, 0] being 1, every entry of magnitude >= 1: [1, 3, -1, 0, -1, 0].
    # Mass [3, 1, 4, 0, -4, 0] elects [+, +, +, 0, -, 0]; the disjoint mean of the agreeing entries is
    # [(4+1)/2, 3, (2+3)/2, 0, (-3-1)/2, 0]; scaled by 0.5 and added to theta_0:
    out = merged(TiesMerger(TiesParams(density=0.5, scale=0.5)), theta0, groups, tmp_path)
    assert torch.equal(out["w"], plus_base([1.25, 1.5, 1.25, 0.0, -1.0, 0.0]))
    assert out["step"].tolist() == [3]  # integer buffers come from theta_0


@pytest.mark.parametrize("percent", [7, 14, 28, 55, 56])  # each k with math.ceil(k / 100 * 100) == k + 1
def test_ties_keeps_density_times_n_entries_as_written(tmp_path: Path, percent: int) -> None:
    """One member whose 100 task-vector entries have distinct magnitudes 1..100: density k/100 keeps exactly k."""
    theta0 = write(tmp_path / "theta0.safetensors", [0.0] * 100)
    member = write(tmp_path / "m.safetensors", [float(v) for v in range(1, 101)])
    out = merged(TiesMerger(TiesParams(density=percent / 100)), theta0, [FactorGroup(1, (member,))], tmp_path)
    assert int((out["w"] != 0).sum()) == percent
    assert out["w"][-percent:].tolist() == [float(v) for v in range(101 - percent, 101)]


def test_ties_with_every_member_agreeing_is_the_scaled_mean_of_the_task_vectors(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(40, 7, generator=generator)
    signs = torch.randn(40, 7, generator=generator).sign()
    deltas = [signs * torch.rand(40, 7, generator=generator) for _ in range(4)]  # same sign per entry
    save_checkpoint(tmp_path / "theta0.safetensors", {"w": base}, kind="theta0")
    paths = []
    for index, delta in enumerate(deltas):
        paths.append(tmp_path / f"m{index}.safetensors")
        save_checkpoint(paths[-1], {"w": base + delta}, kind="member")
    groups = [FactorGroup(1, tuple(paths[:2])), FactorGroup(2, tuple(paths[2:]))]
    out = merged(TiesMerger(TiesParams(density=1.0, scale=0.7)), tmp_path / "theta0.safetensors", groups, tmp_path)
    members = [load_tensors(path)["w"].double() for path in paths]
    expected = base.double() + 0.7 * sum(member - base.double() for member in members) / 4
    torch.testing.assert_close(out["w"], expected.float())


# ----------------------------------------------------------------------------------------------- DARE


def test_dare_by_hand_with_a_fixed_seed(task_inputs, tmp_path: Path) -> None:
    theta0, groups = task_inputs
    out = merged(DareMerger(DareParams(drop=0.5, seed=7, scale=1.0, combine="mean")), theta0, groups, tmp_path)
    places = [(1, 0), (1, 1), (2, 0)]  # (factor, position in the factor) of each task vector
    masks = [drop_mask(torch.Size([6]), 0.5, 7, "w", factor, position) for factor, position in places]
    rescaled = [
        [t / 0.5 if kept else 0.0 for t, kept in zip(tau, mask.tolist(), strict=True)]
        for tau, mask in zip(TAUS, masks, strict=True)
    ]
    expected = [sum(column) / 3 for column in zip(*rescaled, strict=True)]
    torch.testing.assert_close(out["w"], plus_base(expected), rtol=0, atol=1e-15)
    assert 0 < sum(sum(mask.tolist()) for mask in masks) < 18  # some entries dropped, some kept


def test_dare_masks_are_seeded_and_drop_about_p(tmp_path: Path) -> None:
    masks = [drop_mask(torch.Size([200_000]), 0.9, seed, "w", 1, 0) for seed in (0, 0, 1)]
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    assert masks[0].double().mean().item() == pytest.approx(0.1, abs=0.005)
    assert not torch.equal(masks[0], drop_mask(torch.Size([200_000]), 0.9, 0, "w", 1, 1))  # each member its own


def test_the_same_seed_gives_the_same_soup_and_each_mask_is_the_same_in_every_running_soup(
    task_inputs, tmp_path: Path
) -> None:
    theta0, groups = task_inputs
    dare = DareMerger(DareParams(drop=0.5, seed=3, combine="sum"))
    first = merged(dare, theta0, groups, tmp_path / "a")
    again = merged(DareMerger(DareParams(drop=0.5, seed=3, combine="sum")), theta0, groups, tmp_path / "b")
    assert torch.equal(first["w"], again["w"])
    running = merged(dare, theta0, groups, tmp_path / "c", prefixes=True)
    assert torch.equal(running[-1]["w"], first["w"])
    assert torch.equal(running[0]["w"], merged(dare, theta0, groups[:1], tmp_path / "d")["w"])


@pytest.mark.parametrize(("combine", "scale"), [("mean", 1.0), ("mean", 0.4), ("sum", 0.3)])
def test_dare_without_drops_is_task_arithmetic(task_inputs, tmp_path: Path, combine: str, scale: float) -> None:
    theta0, groups = task_inputs
    dare = merged(DareMerger(DareParams(drop=0.0, seed=5, scale=scale, combine=combine)), theta0, groups, tmp_path)
    arithmetic = TaskArithmeticMerger(TaskArithmeticParams(scale=scale, combine=combine))
    linear = merge_weighted(arithmetic.coefficients(theta0, groups), tmp_path / "ta.safetensors")
    torch.testing.assert_close(dare["w"], load_tensors(linear.path)["w"], rtol=1e-15, atol=1e-15)


def test_dare_ties_without_drops_is_ties_without_trimming(task_inputs, tmp_path: Path) -> None:
    theta0, groups = task_inputs
    # No trim: mass [3, 0, 4, .25, -3, 2] elects [+, 0, +, +, -, +]; disjoint means
    # [(4+1)/2, 0, (2+3)/2, (.5+.25)/2, (-3-1)/2, (1+1)/2].
    expected = plus_base([2.5, 0.0, 2.5, 0.375, -2.0, 1.0])
    dare = merged(DareMerger(DareParams(drop=0.0, combine="ties")), theta0, groups, tmp_path / "dare")
    ties = merged(TiesMerger(TiesParams(density=1.0)), theta0, groups, tmp_path / "ties")
    assert torch.equal(dare["w"], expected) and torch.equal(ties["w"], expected)


# ------------------------------------------------------------------------------- a slice at a time


@pytest.fixture
def sliced_inputs(tmp_path: Path) -> tuple[Path, list[FactorGroup], torch.Tensor, list[torch.Tensor]]:
    """Tensors of several of the engine's slices (and an empty one); three members in two factors."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(2 * ENTRY_SLICE + 123, generator=generator)
    members = [base + 0.1 * torch.randn(base.shape, generator=generator) for _ in range(3)]
    empty = torch.zeros(0)
    theta0 = save_checkpoint(tmp_path / "theta0.safetensors", {"w": base, "e": empty}, kind="theta0").path
    paths = [
        save_checkpoint(tmp_path / f"m{i}.safetensors", {"w": m, "e": empty}, kind="member").path
        for i, m in enumerate(members)
    ]
    return theta0, [FactorGroup(1, (paths[0], paths[1])), FactorGroup(2, (paths[2],))], base, members


def _whole_tensor_ties(base: torch.Tensor, members: list[torch.Tensor], density: float) -> torch.Tensor:
    """TIES over whole tensors, as the paper writes it: each member trimmed at its own k-th largest magnitude."""
    trimmed = []
    for member in members:
        tau = member.double() - base.double()
        keep = math.ceil(density * tau.numel())
        threshold = tau.abs().kthvalue(tau.numel() - keep + 1).values
        trimmed.append(torch.where(tau.abs() >= threshold, tau, 0.0))
    elected = sum(trimmed).sign()
    agree = [(tau * elected > 0).double() for tau in trimmed]
    mean = sum(tau * a for tau, a in zip(trimmed, agree, strict=True)) / sum(agree).clamp(min=1)
    return (base.double() + mean).float()


def _whole_tensor_dare(base: torch.Tensor, members: list[torch.Tensor], places: list[tuple[int, int]]) -> torch.Tensor:
    """DARE over whole tensors (p = 0.9, seed 0, mean): every mask drawn for the whole tensor at once."""
    rescaled = [
        (member.double() - base.double()) * drop_mask(base.shape, 0.9, 0, "w", factor, position) / 0.1
        for member, (factor, position) in zip(members, places, strict=True)
    ]
    return (base.double() + sum(rescaled) / len(rescaled)).float()


def test_ties_and_dare_a_slice_at_a_time_are_their_whole_tensor_computations(sliced_inputs, tmp_path: Path) -> None:
    """The engine hands TIES and DARE a slice of every member at a time (memory: one tensor, not one per member);
    the soups are what whole tensors give: thresholds over each member's whole tensor, masks drawn whole."""
    theta0, groups, base, members = sliced_inputs
    ties = merged(TiesMerger(TiesParams(density=0.3)), theta0, groups, tmp_path / "ties", prefixes=True)
    dare = merged(DareMerger(DareParams()), theta0, groups, tmp_path / "dare", prefixes=True)
    places = [(1, 0), (1, 1), (2, 0)]
    for k, members_merged in ((0, 2), (1, 3)):
        expected_ties = _whole_tensor_ties(base, members[:members_merged], 0.3)
        expected_dare = _whole_tensor_dare(base, members[:members_merged], places[:members_merged])
        torch.testing.assert_close(ties[k]["w"], expected_ties, rtol=0, atol=1e-6)
        torch.testing.assert_close(dare[k]["w"], expected_dare, rtol=0, atol=1e-6)
        assert ties[k]["e"].shape == dare[k]["e"].shape == (0,)


# ------------------------------------------------------------------------------- within a factor


def test_ties_inside_each_factor_and_recursive_lambda_across_factors(task_inputs, tmp_path: Path) -> None:
    theta0, groups = task_inputs
    within = {"name": "ties", "params": {"density": 1.0}}
    merger = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.5, "within": within}))
    assert merger.as_weighted_sum(theta0, groups) is None  # per tensor: the engine calls merge_tensor
    # Factor 1, TIES of tau_1 and tau_2: mass [2, -3, 5, 0, -2, 2] -> [4, -1.5, 2.5, 0, -3, 1].
    # Factor 2 holds tau_3 alone: TIES returns it.
    # Theta_1 = 0.5 theta_0 + 0.5 mean_1; Theta_2 = 0.5 Theta_1 + 0.5 mean_2.
    mean_1 = [4.0, -1.5, 2.5, 0.0, -3.0, 1.0]
    theta_1 = [0.5 * v for v in mean_1]
    theta_2 = [0.5 * a + 0.5 * b for a, b in zip(theta_1, TAUS[2], strict=True)]
    running = merged(merger, theta0, groups, tmp_path / "running", prefixes=True)
    assert torch.equal(running[0]["w"], plus_base(theta_1))
    assert torch.equal(running[1]["w"], plus_base(theta_2))
    assert torch.equal(merged(merger, theta0, groups, tmp_path / "soup")["w"], plus_base(theta_2))


def test_the_recursion_starts_each_step_from_the_soup_as_stored(tmp_path: Path) -> None:
    """Per-tensor recursive merges fold Theta_(k-1) as the checkpoint stores it (float32 here), like the
    authors' code: the soup after factor 2 is the fold of the written soup after factor 1."""
    generator = torch.Generator().manual_seed(1)
    paths = []
    for index in range(5):
        paths.append(tmp_path / f"m{index}.safetensors")
        save_checkpoint(paths[-1], {"w": torch.randn(50, generator=generator)}, kind="member")
    groups = [FactorGroup(1, tuple(paths[1:3])), FactorGroup(2, tuple(paths[3:]))]
    merger = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.7, "within": {"name": "ties"}}))
    first, second = merged(merger, paths[0], groups, tmp_path, prefixes=True)
    members = [load_tensors(path)["w"] for path in paths[3:]]
    factor_2 = TiesMerger(TiesParams()).merge_tensor("w", load_tensors(paths[0])["w"], [_factor(2, members)])
    assert torch.equal(second["w"], (0.7 * first["w"].double() + 0.3 * factor_2).float())


def _factor(factor: int, members: list[torch.Tensor]):
    from ltsoups.contracts import FactorTensors

    return FactorTensors(factor, tuple(members))
