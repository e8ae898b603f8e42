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


def effective_number_weights(counts: np.ndarray, beta: float) -> torch.Tensor:
    """Cui et al. (2019): weight 1 / E_n with E_n = (1 - beta^n) / (1 - beta), scaled to sum to K."""
    effective = (1.0 - beta**counts) / (1.0 - beta)
    weights = 1.0 / effective
    return torch.tensor(weights / weights.sum() * len(counts), dtype=torch.float32)


def test_class_balanced_is_cross_entropy_weighted_by_inverse_effective_number(batch) -> None:
    logits, targets = batch
    counts = np.array([1000, 200, 50, 10, 1])
    expected = effective_number_weights(counts, beta=0.99)
    loss = ClassBalancedLoss(ClassBalancedParams(beta=0.99)).build(counts)
    assert len(set(targets.tolist())) > 1  # one class alone would hide the weights: its weighted mean is its mean
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets, weight=expected))
    assert not torch.allclose(loss(logits, targets), F.cross_entropy(logits, targets))


def test_class_balanced_weights_rare_classes_more() -> None:
    counts = np.array([1000, 200, 50, 10, 1])
    expected = effective_number_weights(counts, beta=0.99)
    loss = ClassBalancedLoss(ClassBalancedParams(beta=0.99)).build(counts)
    # Equal logits give every sample the same unweighted loss, so gradients differ by the class weights alone.
    logits = torch.zeros(2, 5, requires_grad=True)
    loss(logits, torch.tensor([0, 4])).backward()
    head, rare = logits.grad.norm(dim=1)
    assert rare > head
    assert (rare / head).item() == pytest.approx((expected[4] / expected[0]).item(), rel=1e-5)
