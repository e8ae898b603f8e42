"""Calibration of a classifier's probabilities, as the paper's Table 1 reports it: NLL, ECE and Brier
score, each after a temperature fitted on the validation split.

Definitions (n test samples, K classes, p = softmax(logits / T)):
- NLL = mean_i -ln p_i[y_i] (natural log);
- Brier = mean_i sum_k (p_i[k] - [k = y_i])^2, between 0 and 2;
- ECE, in percent: the confidences c_i = max_k p_i[k] fall into 15 equal-width bins ((b-1)/15, b/15];
  ECE = 100 * sum_b (|B_b| / n) * |accuracy(B_b) - mean confidence(B_b)|.
Per group of classes (many / medium / few, and the paper's head / tail: more than
``data.thresholds.head`` training samples, or not), each metric is computed on the test samples whose
true class is in the group: NLL and Brier as their means, ECE binned over those samples alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ltsoups.data.stats import ShotGroup, Side

ECE_BINS = 15
TEMPERATURE_RANGE = (1e-2, 1e2)
"""The fitted temperature is searched in this interval (a cosine head's logits lie within +-scale)."""
_BISECTIONS = 200
GROUPS = (*(group.value for group in ShotGroup), *(side.value for side in Side))
"""The groups of classes calibration is reported on, in report order."""


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """log softmax(logits / temperature) per row, in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _nll_slope(logits: np.ndarray, labels: np.ndarray, inverse_temperature: float) -> float:
    """d/d(beta) of mean_i [logsumexp(beta z_i) - beta z_i[y_i]]: E_p[z] - z[y], averaged over samples."""
    probs = np.exp(log_softmax(logits, 1.0 / inverse_temperature))
    return float(((probs * logits).sum(axis=1) - logits[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE that minimises the NLL of softmax(logits / T) on these samples.

    The NLL is convex in beta = 1 / T, so its slope in beta is non-decreasing: bisection on the sign of
    the slope, in log beta, finds the minimum to float precision, deterministically. When the minimum
    lies outside the range, the nearer end is returned.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    low, high = math.log(1.0 / TEMPERATURE_RANGE[1]), math.log(1.0 / TEMPERATURE_RANGE[0])
    if _nll_slope(z, y, math.exp(low)) >= 0:
        return TEMPERATURE_RANGE[1]
    if _nll_slope(z, y, math.exp(high)) <= 0:
        return TEMPERATURE_RANGE[0]
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        slope = _nll_slope(z, y, math.exp(middle))
        if slope == 0:
            low = high = middle
            break
        low, high = (middle, high) if slope < 0 else (low, middle)
    return 1.0 / math.exp((low + high) / 2)


def negative_log_likelihood(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-ln p[y] per sample."""
    return -log_probs[np.arange(len(labels)), labels]


def brier_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """sum_k (p[k] - [k = y])^2 per sample."""
    target = np.zeros_like(probs)
    target[np.arange(len(labels)), labels] = 1.0
    return ((probs - target) ** 2).sum(axis=1)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE in percent over ``bins`` equal-width confidence bins ((b-1)/bins, b/bins]."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return 100.0 * total


@dataclass(frozen=True)
class Calibration:
    """Calibration metrics of one model on the test split, after temperature scaling fitted on val."""

    temperature: float
    nll: float
    ece: float
    """percent"""
    brier: float
    nll_groups: dict[str, float]
    ece_groups: dict[str, float]
    brier_groups: dict[str, float]
    """per group of classes (many / medium / few / head / tail) with test samples"""

    def as_dict(self) -> dict[str, float]:
        """Flat: temperature, nll, ece, brier, nll_many, ..., nll_tail, ece_many, ..., brier_tail."""
        return {
            "temperature": self.temperature,
            "nll": self.nll,
            "ece": self.ece,
            "brier": self.brier,
            **{f"nll_{group}": value for group, value in self.nll_groups.items()},
            **{f"ece_{group}": value for group, value in self.ece_groups.items()},
            **{f"brier_{group}": value for group, value in self.brier_groups.items()},
        }


def calibrate(
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    class_groups: Sequence[Sequence[str]],
) -> Calibration:
    """Fit T on the validation split, then NLL, ECE and Brier of softmax(test logits / T).

    ``class_groups`` gives, for every class, the groups it belongs to (``ClassStats.class_groups``).
    """
    temperature = fit_temperature(val_logits, val_labels)
    labels = np.asarray(test_labels, dtype=np.int64)
    log_probs = log_softmax(test_logits, temperature)
    probs = np.exp(log_probs)
    nll, brier = negative_log_likelihood(log_probs, labels), brier_scores(probs, labels)
    samples = {group: np.array([group in groups for groups in class_groups], dtype=bool)[labels] for group in GROUPS}
    present = {group: mask for group, mask in samples.items() if mask.any()}
    return Calibration(
        temperature=temperature,
        nll=float(nll.mean()),
        ece=expected_calibration_error(probs, labels),
        brier=float(brier.mean()),
        nll_groups={group: float(nll[mask].mean()) for group, mask in present.items()},
        ece_groups={group: expected_calibration_error(probs[mask], labels[mask]) for group, mask in present.items()},
        brier_groups={group: float(brier[mask].mean()) for group, mask in present.items()},
    )
