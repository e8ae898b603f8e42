"""Focal loss (Lin et al. 2017) as an ltsoups loss plugin."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from ltsoups.contracts import Loss, LossFn, PluginParams


class FocalParams(PluginParams):
    gamma: float = Field(2.0, ge=0, description="focusing parameter; 0 gives cross-entropy")


class FocalLoss(Loss):
    Params = FocalParams
    description = "focal loss (example plugin)"
    params: FocalParams

    def build(self, class_counts: np.ndarray) -> LossFn:
        gamma = self.params.gamma

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
            return (-((1 - log_p.exp()) ** gamma) * log_p).mean()

        return loss
