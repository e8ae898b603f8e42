"""Built-in per-tensor mergers on task vectors (tau_k = theta_k - theta_0): TIES and DARE.

Each computes one tensor of the merge from the same tensor of theta_0 and of every member, in float64,
entry by entry once it knows a member's threshold (TIES) or mask generator (DARE): the engine hands
them a slice of every member at a time (`EntrywiseMerger`). Used across all members, or as the
within-factor step of ``recursive`` (on one factor's replicas).
torch is imported inside methods: naming and validating a merger must not load it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

from pydantic import Field

from ltsoups.contracts import ENTRY_SLICE, EntrywiseMerger, PluginParams

if TYPE_CHECKING:
    import torch


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
    """The ceil(density * n)-th largest of ``magnitudes``: keeping entries >= it keeps the top-k% (ties too).

    ``magnitudes`` (contiguous) is reordered in place.
    """
    flat = magnitudes.view(-1).numpy()
    keep = kept_entries(density, flat.size)
    if keep >= flat.size:
        return 0.0
    # numpy's introselect finds it in linear time, several times faster than torch.kthvalue on CPU.
    flat.partition(flat.size - keep)
    return float(flat[flat.size - keep])


def disjoint_mean(deltas: Sequence[torch.Tensor], elected: torch.Tensor) -> torch.Tensor:
    """TIES' disjoint merge: per entry, the mean of the deltas whose sign is the ``elected`` one (zeros excluded)."""
    import torch

    total = torch.zeros_like(elected)
    count = torch.zeros_like(elected)
    for delta in deltas:
        agrees = delta.mul(elected).gt_(0)  # 1.0 where delta has the elected sign (so is not zero), else 0.0
        count.add_(agrees)
        total.add_(agrees.mul_(delta))  # delta where it agrees: the deltas stay as given
    return total.div_(count.clamp_(min=1))


# ----------------------------------------------------------------------------------------------- TIES


class TiesParams(PluginParams):
    density: float = Field(
        0.2, gt=0.0, le=1.0, description="k: the share of each task vector's entries kept, by magnitude (paper: 0.2)"
    )
    scale: float = Field(1.0, description="lambda in theta_0 + lambda * tau_merged (paper: 1)")


class TiesMerger(EntrywiseMerger[float]):
    """TIES-Merging (Yadav et al., NeurIPS 2023, "Resolving interference when merging models").

    Per tensor: trim each task vector to its top-k% magnitudes (the rest set to 0), elect each entry's
    sign as the sign of the trimmed vectors' sum (total mass), average the trimmed entries that agree
    with it (disjoint mean), and add lambda times that to theta_0. The paper trims over the whole model;
    like mergekit, this trims each tensor on its own (a streaming merge sees one tensor at a time).
    """

    Params = TiesParams
    description = "TIES: trim to top-k% magnitudes, elect signs by mass, disjoint mean (Yadav et al. 2023)"
    params: TiesParams

    def member_state(
        self, name: str, base: torch.Tensor, factor: int, position: int, member: Callable[[], torch.Tensor]
    ) -> float:
        """The member's trimming threshold: the ceil(k * n)-th largest |theta_k - theta_0| of the tensor."""
        return magnitude_threshold(self._magnitudes(member().reshape(-1), base.reshape(-1)), self.params.density)

    def member_slice(self, state: float, base: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """The member's task vector, trimmed."""
        delta = _task_vector(member, base)
        return delta.mul_(delta.abs().ge_(state))

    def combine(self, base: torch.Tensor, members: Sequence[torch.Tensor]) -> torch.Tensor:
        mean = disjoint_mean(members, _total(members).sign_())
        return mean.mul_(self.params.scale).add_(base)

    @staticmethod
    def _magnitudes(member: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """|theta_k - theta_0| of a whole tensor (``base`` in float64), a slice at a time in one float64 buffer."""
        import torch

        magnitudes = torch.empty(base.shape, dtype=torch.float64)
        for start in range(0, base.numel(), ENTRY_SLICE):
            part = magnitudes[start : start + ENTRY_SLICE].copy_(member[start : start + ENTRY_SLICE])
            part.sub_(base[start : start + ENTRY_SLICE]).abs_()
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


class DareMerger(EntrywiseMerger["torch.Generator"]):
    """DARE (Yu et al., ICML 2024, "Language models are Super Mario"): drop each task-vector entry with
    probability p and rescale the rest by 1/(1 - p), then merge by task arithmetic or TIES' sign election.

    The masks come from a generator seeded by (seed, tensor name, factor, position in the factor), so
    the same seed gives the same soup, and a member's mask is the same in every running soup.
    """

    Params = DareParams
    description = "DARE: drop task-vector entries with prob. p, rescale by 1/(1-p), then combine (Yu et al. 2024)"
    params: DareParams

    def member_state(
        self, name: str, base: torch.Tensor, factor: int, position: int, member: Callable[[], torch.Tensor]
    ) -> torch.Generator:
        """The generator of the member's drop mask (its draws, slice after slice, are `drop_mask`'s)."""
        return mask_generator(self.params.seed, name, factor, position)

    def member_slice(self, state: torch.Generator, base: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """The member's task vector, dropped and rescaled."""
        import torch

        drop = self.params.drop
        kept = torch.rand(member.shape, generator=state) >= drop
        return _task_vector(member, base).mul_(kept).div_(1.0 - drop)

    def combine(self, base: torch.Tensor, members: Sequence[torch.Tensor]) -> torch.Tensor:
        import torch

        combine = self.params.combine
        if combine is DareCombine.TIES:
            combined = disjoint_mean(members, _total(members).sign_())
        else:
            weight = 1.0 / len(members) if combine is DareCombine.MEAN else 1.0
            combined = torch.zeros_like(base)
            for delta in members:
                combined.add_(delta, alpha=weight)
        return combined.mul_(self.params.scale).add_(base)


def mask_generator(seed: int, name: str, factor: int, position: int) -> torch.Generator:
    """The generator of DARE's keep mask of one member's tensor, seeded by (seed, name, factor, position)."""
    import torch

    key = hashlib.sha256(f"{seed}/{name}/{factor}/{position}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little") >> 1)


def drop_mask(shape: torch.Size, drop: float, seed: int, name: str, factor: int, position: int) -> torch.Tensor:
    """DARE's keep mask of one member's tensor: True with probability 1 - drop, from its own seeded generator."""
    import torch

    return torch.rand(shape, generator=mask_generator(seed, name, factor, position)) >= drop
