"""Built-in samplers: progressive subsampling, full data (conventional soups), one fixed ratio."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ltsoups.contracts import PluginParams, Sampler, SubsetDraw
from ltsoups.data.profiles import log2_rounds


def draw_capped(
    class_counts: np.ndarray, cap: int, factor: int, replica: int, seed: int, share_with_replica: int | None = None
) -> SubsetDraw:
    """Keep every class's samples up to ``cap``, drawn without replacement by a seeded RNG.

    The RNG is seeded from (seed, factor, replica), so a member's subset does not depend on which
    other members are in the plan. ``share_with_replica`` draws that replica's subset instead.
    """
    rng = np.random.default_rng([seed, factor, replica if share_with_replica is None else share_with_replica])
    positions = []
    for count in class_counts.tolist():
        if count <= cap:
            positions.append(np.arange(count, dtype=np.int64))
        else:
            positions.append(np.sort(rng.choice(count, size=cap, replace=False)).astype(np.int64))
    return SubsetDraw(factor=factor, replica=replica, seed=seed, cap=cap, positions=tuple(positions))


class ProgressiveParams(PluginParams):
    rounds: int = Field(5, ge=0, le=30, description="N: factors 2^0..2^N, i.e. N + 1 subsets")
    replicas: int = Field(2, ge=1, le=64, description="M: members trained per factor")
    shared_subset: bool = Field(
        False,
        description="all replicas of a factor train on one subset (the authors' released code); "
        "default: each replica draws its own subset (the paper's bootstrap)",
    )


class ProgressiveSubsampler(Sampler):
    """Subset i caps every class at (min n_c) * 2^i samples, so its imbalance ratio is at most 2^i."""

    Params = ProgressiveParams
    description = "LT-Soups progressive subsampling: factors 2^0..2^N, M replicas each"
    params: ProgressiveParams

    def draws(self, class_counts: np.ndarray, seed: int) -> list[SubsetDraw]:
        smallest = int(class_counts.min())
        shared = 0 if self.params.shared_subset else None
        return [
            draw_capped(class_counts, smallest * 2**i, 2**i, m, seed, share_with_replica=shared)
            for i in range(self.params.rounds + 1)
            for m in range(self.params.replicas)
        ]


class FullDataParams(PluginParams):
    replicas: int = Field(2, ge=1, le=64, description="M: members trained on the full data")


class FullDataSampler(Sampler):
    """Every member sees all the training data: the conventional model soup baseline."""

    Params = FullDataParams
    description = "M members on the full training set (conventional model soups)"
    params: FullDataParams

    def draws(self, class_counts: np.ndarray, seed: int) -> list[SubsetDraw]:
        factor = 2 ** log2_rounds(class_counts)
        cap = int(class_counts.max())
        return [draw_capped(class_counts, cap, factor, m, seed) for m in range(self.params.replicas)]


class FixedRatioParams(PluginParams):
    ratio: int = Field(1, ge=1, description="every class capped at (min n_c) * ratio samples")
    replicas: int = Field(2, ge=1, le=64, description="M: members trained at this ratio")


class FixedRatioSampler(Sampler):
    """M members at one imbalance ratio (the paper's Soups-rho ablation)."""

    Params = FixedRatioParams
    description = "M members on subsets capped at (min n_c) * ratio"
    params: FixedRatioParams

    def draws(self, class_counts: np.ndarray, seed: int) -> list[SubsetDraw]:
        cap = int(class_counts.min()) * self.params.ratio
        return [draw_capped(class_counts, cap, self.params.ratio, m, seed) for m in range(self.params.replicas)]


class ZeroShotParams(PluginParams):
    pass


class ZeroShotSampler(Sampler):
    """No members: stage 1 is theta_0 itself, so stage 1 + CR is a linear probe of the frozen encoder."""

    Params = ZeroShotParams
    description = "no fine-tuned members (zero-shot; with retrain-head: the linear-probe baseline)"
    params: ZeroShotParams

    def draws(self, class_counts: np.ndarray, seed: int) -> list[SubsetDraw]:
        return []
