"""A progressive subsampler whose factors grow by any base, not only 2."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ltsoups.contracts import PluginParams, Sampler, SubsetDraw
from ltsoups.plugins.samplers import draw_capped


class GeometricParams(PluginParams):
    rounds: int = Field(3, ge=0, description="factors base^0 .. base^rounds")
    replicas: int = Field(2, ge=1, description="members per factor")
    base: int = Field(4, ge=2, description="growth of the cap from one factor to the next")


class GeometricSubsampler(Sampler):
    """Caps every class at (min n_c) * base^i for i = 0..rounds."""

    Params = GeometricParams
    description = "progressive subsampling with factors base^i (example plugin)"
    params: GeometricParams

    def draws(self, class_counts: np.ndarray, seed: int) -> list[SubsetDraw]:
        smallest = int(class_counts.min())
        p = self.params
        return [
            draw_capped(class_counts, smallest * p.base**i, p.base**i, m, seed)
            for i in range(p.rounds + 1)
            for m in range(p.replicas)
        ]
