"""Long-tail profiles: how many training samples each class gets."""

from __future__ import annotations

import math
from enum import Enum

import numpy as np


def exponential_counts(num_classes: int, n_max: int, rho: float) -> np.ndarray:
    """n_i = int(n_max * (1/rho)^(i/(K-1))) for i = 0..K-1 (the CIFAR-100-LT profile)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if rho < 1:
        raise ValueError(f"rho must be >= 1, got {rho}")
    exponents = np.arange(num_classes) / (num_classes - 1)
    return np.array([int(n_max * (1.0 / rho) ** e) for e in exponents], dtype=np.int64)


class DecayCurve(str, Enum):
    """How class counts fall within the head (or the tail) group of the two-axis benchmark."""

    EXP_INTERPOLATE = "exp-interpolate"
    """The authors' curve: int(end + (start - end) * e^(-5 s)) for s = 0..1 across the group."""
    GEOMETRIC = "geometric"
    """round(start * (end / start)^s): a constant ratio between neighbouring classes (ours)."""


EXP_INTERPOLATE_RATE = 5.0
"""k in the authors' exp_interpolate: the curve falls fast, then flattens towards its end value."""


def exp_interpolated_counts(count: int, start: float, end: float, rate: float = EXP_INTERPOLATE_RATE) -> np.ndarray:
    """The authors' exp_interpolate at s = linspace(0, 1, count), truncated to int (one class gets ``start``).

    The curve approaches ``end`` without reaching it: with start 500 and end 101 the last class gets 103.
    """
    steps = np.linspace(0.0, 1.0, count)
    return (end + (start - end) * np.exp(-rate * steps)).astype(np.int64)


def geometric_counts(count: int, start: float, end: float) -> np.ndarray:
    """round(start * (end / start)^(i / (count - 1))) for i = 0..count-1: from ``start`` to ``end`` exactly."""
    if count == 1:
        return np.array([round(start)], dtype=np.int64)
    steps = np.arange(count) / (count - 1)
    return np.array([round(start * (end / start) ** s) for s in steps], dtype=np.int64)


_CURVES = {DecayCurve.EXP_INTERPOLATE: exp_interpolated_counts, DecayCurve.GEOMETRIC: geometric_counts}


def head_class_count(num_classes: int, eta: float) -> int:
    """H for a head-to-tail ratio eta = H/T: round(K * eta / (1 + eta)), clipped so both groups exist.

    The authors give H as a whole percentage f of the classes (H = int(K * f / 100)); rounding makes
    eta = f / (100 - f) give exactly their H for every f (a truncation would lose a class to float error).
    """
    if eta <= 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    return min(max(round(num_classes * eta / (1 + eta)), 1), num_classes - 1)


def two_axis_counts(
    num_classes: int,
    eta: float,
    head_range: tuple[float, float] = (500, 101),
    tail_range: tuple[float, float] = (100, 5),
    curve: DecayCurve = DecayCurve.EXP_INTERPOLATE,
) -> np.ndarray:
    """H head classes falling over ``head_range``, then T = K - H tail classes over ``tail_range``.

    H/T is the head-to-tail ratio eta (see ``head_class_count``); ``curve`` shapes the fall within
    each group (default: the authors' exp_interpolate).
    """
    head = head_class_count(num_classes, eta)
    counts = _CURVES[curve]
    return np.concatenate([counts(head, *head_range), counts(num_classes - head, *tail_range)])


def imbalance_ratio(counts: np.ndarray) -> float:
    return float(counts.max() / counts.min())


def log2_rounds(counts: np.ndarray) -> int:
    """ceil(log2(rho)): the number of doublings from a balanced subset to the full imbalance."""
    return math.ceil(math.log2(imbalance_ratio(counts)))
