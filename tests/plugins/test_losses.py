import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltsoups.plugins.losses import (
    ClassBalancedLoss,
    ClassBalancedParams,
    CrossEntropyLoss,
    CrossEntropyParams,
    LogitAdjustedLoss,
    LogitAdjustedParams,
)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 5, generator=generator) * 3, torch.randint(0, 5, (16,), generator=generator)


def test_logit_adjusted_equals_cross_entropy_under_a_uniform_prior(batch) -> None:
    logits, targets = batch
    la = LogitAdjustedLoss(LogitAdjustedParams(tau=1.0)).build(np.full(5, 37))
    ce = CrossEntropyLoss(CrossEntropyParams()).build(np.full(5, 37))
    torch.testing.assert_close(la(logits, targets), ce(logits, targets))


def test_logit_adjusted_adds_tau_log_prior(batch) -> None:
    logits, targets = batch
    counts = np.array([500, 100, 20, 5, 1])
    prior = torch.tensor(counts / counts.sum(), dtype=torch.float32)
    la = LogitAdjustedLoss(LogitAdjustedParams(tau=0.5)).build(counts)
    torch.testing.assert_close(la(logits, targets), F.cross_entropy(logits + 0.5 * prior.log(), targets))


def test_class_balanced_weights_rare_classes_more(batch) -> None:
    logits, _ = batch
    counts = np.array([1000, 10, 10, 10, 10])
    loss = ClassBalancedLoss(ClassBalancedParams(beta=0.999)).build(counts)
    head_only = loss(logits, torch.zeros(16, dtype=torch.long))
    per_sample = F.cross_entropy(logits, torch.zeros(16, dtype=torch.long))
    assert head_only == pytest.approx(per_sample.item(), rel=1e-5)  # weighted mean of one class is its mean
    weighted = ClassBalancedLoss(ClassBalancedParams(beta=0.999)).build(counts)
    rare = torch.full((16,), 3)
    assert weighted(logits, rare).item() == pytest.approx(F.cross_entropy(logits, rare).item(), rel=1e-5)
