"""Built-in per-tensor mergers on task vectors (tau_k = theta_k - theta_0): TIES and DARE.

Each computes one tensor of the merge from the same tensor of theta_0 and of every member, in float64.
Used across all members, or as the within-factor step of ``recursive`` (on one factor's replicas).
torch is imported inside methods: naming and validating a merger must not load it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from ltsoups.contracts import FactorTensors, PerTensorMerger, PluginParams

if TYPE_CHECKING:
    import torch


def _members(groups: Sequence[FactorTensors]) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(factor, position within its factor, tensor) of every member."""
    for group in groups:
        for position, tensor in enumerate(group.members):
            yield group.factor, position, tensor


_SLICE = 1 << 16
"""Entries per slice of the per-entry steps: every member's slice in float64 stays in the CPU cache."""


def _total(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    total = tensors[0].clone()
    for tensor in tensors[1:]:
        total.add_(tensor)
    return total


def _task_vector(member: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    import torch

    return member.to(torch.float64, copy=True).sub_(base)  # a copy even of float64 inputs: they stay as given


def kept_entries(density: float, size: int) -> int:
    """ceil(density * size), with density as written: 0.07 of 100 is 7 (``math.ceil(0.07 * 100)`` is 8).

    The float 0.07 lies a little above 7/100; its shortest decimal spelling, "0.07", is what the user wrote.
    """
    return math.ceil(Fraction(repr(density)) * size)


def magnitude_threshold(magnitudes: torch.Tensor, density: float) -> float:
    """The ceil(density * n)-th largest of ``magnitudes``: keeping entries >= it keeps the top-k% (ties too)."""
    import numpy as np

    flat = magnitudes.flatten().numpy()
    keep = kept_entries(density, flat.size)
    if keep >= flat.size:
        return 0.0
    # numpy's introselect finds it in linear time, several times faster than torch.kthvalue on CPU.
    return float(np.partition(flat, flat.size - keep)[flat.size - keep])


def disjoint_mean(deltas: Iterator[torch.Tensor], elected: torch.Tensor) -> torch.Tensor:
    """TIES' disjoint merge: per entry, the mean of the deltas whose sign is the ``elected`` one (zeros excluded).

    ``deltas`` are fresh tensors (they are modified).
    """
    import torch

    total = torch.zeros_like(elected)
    count = torch.zeros_like(elected)
    for delta in deltas:
        agrees = delta.mul(elected).gt_(0)  # 1.0 where delta has the elected sign (so is not zero), else 0.0
        total.add_(delta.mul_(agrees))
        count.add_(agrees)
    return total.div_(count.clamp_(min=1))


# ----------------------------------------------------------------------------------------------- TIES


class TiesParams(PluginParams):
    density: float = Field(
        0.2, gt=0.0, le=1.0, description="k: the share of each task vector's entries kept, by magnitude (paper: 0.2)"
    )
    scale: float = Field(1.0, description="lambda in theta_0 + lambda * tau_merged (paper: 1)")


class TiesMerger(PerTensorMerger):
    """TIES-Merging (Yadav et al., NeurIPS 2023, "Resolving interference when merging models").

    Per tensor: trim each task vector to its top-k% magnitudes (the rest set to 0), elect each entry's
    sign as the sign of the trimmed vectors' sum (total mass), average the trimmed entries that agree
    with it (disjoint mean), and add lambda times that to theta_0. The paper trims over the whole model;
    like mergekit, this trims each tensor on its own (a streaming merge sees one tensor at a time).
    """

    Params = TiesParams
    description = "TIES: trim to top-k% magnitudes, elect signs by mass, disjoint mean (Yadav et al. 2023)"
    params: TiesParams

    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        import torch

        members = [tensor.reshape(-1) for _, _, tensor in _members(groups)]
        flat_base = base.reshape(-1)
        thresholds = [
            magnitude_threshold(self._magnitudes(member, flat_base), self.params.density) for member in members
        ]
        merged = torch.empty(flat_base.shape, dtype=torch.float64)
        # Trimming, electing and averaging are per entry: done a slice at a time, every member's trimmed
        # slice held at once, so no full-size temporary beyond the output.
        for start in range(0, flat_base.numel(), _SLICE):
            base_slice = flat_base[start : start + _SLICE].to(torch.float64)
            trimmed = []
            for member, threshold in zip(members, thresholds, strict=True):
                delta = _task_vector(member[start : start + _SLICE], base_slice)
                trimmed.append(delta.mul_(delta.abs().ge_(threshold)))
            mass = _total(trimmed)
            mean = disjoint_mean(iter(trimmed), mass.sign_())
            merged[start : start + _SLICE] = mean.mul_(self.params.scale).add_(base_slice)
        return merged.view(base.shape)

    @staticmethod
    def _magnitudes(member: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """|theta_k - theta_0| of a whole tensor, computed a slice at a time into one float64 buffer."""
        import torch

        magnitudes = torch.empty(base.shape, dtype=torch.float64)
        for start in range(0, base.numel(), _SLICE):
            part = base[start : start + _SLICE].to(torch.float64)
            magnitudes[start : start + _SLICE] = _task_vector(member[start : start + _SLICE], part).abs_()
        return magnitudes


# ----------------------------------------------------------------------------------------------- DARE


class DareCombine(str, Enum):
    MEAN = "mean"
    SUM = "sum"
    TIES = "ties"


class DareParams(PluginParams):
    drop: float = Field(0.9, ge=0.0, lt=1.0, description="p: each task-vector entry is dropped with probability p")
    seed: int = Field(0, ge=0, description="the drop masks' seed (with the tensor's name and the member's place)")
    scale: float = Field(1.0, description="s in theta_0 + s * combined rescaled task vectors")
    combine: DareCombine = Field(
        DareCombine.MEAN,
        description="how the rescaled task vectors combine: 'mean' or 'sum' (task arithmetic), or 'ties' "
        "(TIES' sign election and disjoint mean, no trim: DARE-TIES)",
    )


class DareMerger(PerTensorMerger):
    """DARE (Yu et al., ICML 2024, "Language models are Super Mario"): drop each task-vector entry with
    probability p and rescale the rest by 1/(1 - p), then merge by task arithmetic or TIES' sign election.

    The masks come from a generator seeded by (seed, tensor name, factor, position in the factor), so
    the same seed gives the same soup, and a member's mask is the same in every running soup.
    """

    Params = DareParams
    description = "DARE: drop task-vector entries with prob. p, rescale by 1/(1-p), then combine (Yu et al. 2024)"
    params: DareParams

    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        import torch

        drop, combine = self.params.drop, self.params.combine
        members = list(_members(groups))
        masks = [drop_mask(base.shape, drop, self.params.seed, name, f, p).reshape(-1) for f, p, _ in members]
        flat_base = base.reshape(-1)
        merged = torch.empty(flat_base.shape, dtype=torch.float64)
        weight = 1.0 / len(members) if combine is DareCombine.MEAN else 1.0
        for start in range(0, flat_base.numel(), _SLICE):  # per entry from here: a slice at a time
            base_slice = flat_base[start : start + _SLICE].to(torch.float64)
            rescaled = [
                _task_vector(member.reshape(-1)[start : start + _SLICE], base_slice)
                .mul_(mask[start : start + _SLICE])
                .div_(1.0 - drop)
                for (_, _, member), mask in zip(members, masks, strict=True)
            ]
            if combine is DareCombine.TIES:
                combined = disjoint_mean(iter(rescaled), _total(rescaled).sign_())
            else:
                combined = torch.zeros_like(base_slice)
                for delta in rescaled:
                    combined.add_(delta, alpha=weight)
            merged[start : start + _SLICE] = combined.mul_(self.params.scale).add_(base_slice)
        return merged.view(base.shape)


def drop_mask(shape: torch.Size, drop: float, seed: int, name: str, factor: int, position: int) -> torch.Tensor:
    """DARE's keep mask of one member's tensor: True with probability 1 - drop, from its own seeded generator."""
    import torch

    key = hashlib.sha256(f"{seed}/{name}/{factor}/{position}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") >> 1)
    return torch.rand(shape, generator=generator) >= drop
