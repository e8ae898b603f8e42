"""Long-tail profiles: how many training samples each class gets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def exponential_counts(num_classes: int, n_max: int, rho: float) -> np.ndarray:
    """n_i = int(n_max * (1/rho)^(i/(K-1))) for i = 0..K-1 (the CIFAR-100-LT profile)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if rho < 1:
        raise ValueError(f"rho must be >= 1, got {rho}")
    exponents = np.arange(num_classes) / (num_classes - 1)
    return np.array([int(n_max * (1.0 / rho) ** e) for e in exponents], dtype=np.int64)


def two_axis_counts(
    num_classes: int,
    eta: float,
    head_range: tuple[int, int] = (500, 101),
    tail_range: tuple[int, int] = (100, 5),
) -> np.ndarray:
    """Counts with H head classes decaying over ``head_range`` and T tail classes over ``tail_range``.

    H/T is the head-to-tail ratio eta: H = round(K * eta / (1 + eta)), clipped so both groups are
    non-empty. Within each group counts decay exponentially from the first to the second bound.
    """
    if eta <= 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    head = min(max(round(num_classes * eta / (1 + eta)), 1), num_classes - 1)
    return np.concatenate(
        [_exponential_between(head, *head_range), _exponential_between(num_classes - head, *tail_range)]
    )


def _exponential_between(count: int, start: int, end: int) -> np.ndarray:
    if count == 1:
        return np.array([start], dtype=np.int64)
    steps = np.arange(count) / (count - 1)
    return np.array([round(start * (end / start) ** s) for s in steps], dtype=np.int64)


def read_counts(path: Path) -> np.ndarray:
    """Class counts from a JSON list of non-negative integers (or {"counts": [...]})."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read class counts ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: class counts must be a JSON text file (byte {err.start} is not UTF-8)") from err
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as err:  # ValueError: JSONDecodeError, integers too long to convert
        raise ValueError(f"{path}: class counts are not valid JSON ({err})") from err
    if isinstance(raw, dict):
        raw = raw.get("counts")
    if not isinstance(raw, list) or not raw or not all(isinstance(n, int) and n >= 0 for n in raw):
        raise ValueError(f"{path}: class counts must be a non-empty JSON list of non-negative integers")
    if len(raw) < 2:
        raise ValueError(f"{path}: need counts for at least 2 classes")
    counts = np.array(raw, dtype=np.int64)
    if counts.min() == 0:
        raise ValueError(f"{path}: class {int(np.argmin(counts))} has no samples")
    return counts


def imbalance_ratio(counts: np.ndarray) -> float:
    return float(counts.max() / counts.min())


def log2_rounds(counts: np.ndarray) -> int:
    """ceil(log2(rho)): the number of doublings from a balanced subset to the full imbalance."""
    return math.ceil(math.log2(imbalance_ratio(counts)))
