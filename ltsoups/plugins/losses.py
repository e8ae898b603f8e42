"""Built-in losses: logit-adjusted, cross-entropy and class-balanced cross-entropy.

torch is imported when a loss is built: naming and validating a loss must not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from ltsoups.contracts import Loss, LossFn, PluginParams

if TYPE_CHECKING:
    import torch


class LogitAdjustedParams(PluginParams):
    tau: float = Field(1.0, ge=0.0, description="strength of the adjustment: logits + tau * log(prior)")


class LogitAdjustedLoss(Loss):
    """Cross-entropy on logits + tau * log(pi), pi the class prior of the data the model trains on.

    Applied in training only; predictions use the raw logits (as in the paper and its code).
    """

    Params = LogitAdjustedParams
    description = "logit-adjusted cross-entropy (Menon et al.), prior from the member's own subset"
    params: LogitAdjustedParams

    def build(self, class_counts: np.ndarray) -> LossFn:
        import torch
        import torch.nn.functional as F

        counts = torch.as_tensor(class_counts, dtype=torch.float64)
        log_prior = torch.log((counts / counts.sum()).clamp_min(1e-12)).float()
        tau = self.params.tau

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            adjustment = tau * log_prior.to(device=logits.device, dtype=logits.dtype)
            return F.cross_entropy(logits + adjustment, targets)

        return loss


class CrossEntropyParams(PluginParams):
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="label smoothing")


class CrossEntropyLoss(Loss):
    Params = CrossEntropyParams
    description = "plain cross-entropy"
    params: CrossEntropyParams

    def build(self, class_counts: np.ndarray) -> LossFn:
        import torch.nn.functional as F

        smoothing = self.params.label_smoothing

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, targets, label_smoothing=smoothing)

        return loss


class ClassBalancedParams(PluginParams):
    beta: float = Field(0.9999, ge=0.0, lt=1.0, description="effective-number beta (Cui et al. 2019)")


class ClassBalancedLoss(Loss):
    """Cross-entropy weighted by inverse effective number (1 - beta^n) / (1 - beta), weights summing to K."""

    Params = ClassBalancedParams
    description = "class-balanced cross-entropy (effective number of samples)"
    params: ClassBalancedParams

    def build(self, class_counts: np.ndarray) -> LossFn:
        import torch
        import torch.nn.functional as F

        beta = self.params.beta
        counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
        weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
        weights = torch.as_tensor(weights / weights.sum() * len(counts), dtype=torch.float32)

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, targets, weight=weights.to(device=logits.device, dtype=logits.dtype))

        return loss
