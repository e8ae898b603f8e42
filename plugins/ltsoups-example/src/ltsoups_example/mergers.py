"""A per-tensor merger: the elementwise median of the members, a soup robust to one member gone astray."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from ltsoups.contracts import FactorTensors, PerTensorMerger, PluginParams

if TYPE_CHECKING:
    import torch


class MedianParams(PluginParams):
    include_theta0: bool = Field(False, description="count theta_0 as one more member")


class MedianMerger(PerTensorMerger):
    """Each weight is the median of that weight over the members (the lower median for an even count)."""

    Params = MedianParams
    description = "elementwise median of the members (example plugin)"
    params: MedianParams

    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        import torch

        members = [member for group in groups for member in group.members]
        if self.params.include_theta0:
            members.insert(0, base)
        return torch.stack(members).to(torch.float64).median(dim=0).values
