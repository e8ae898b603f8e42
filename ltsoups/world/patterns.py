"""Fill patterns as masks on pixel-scaled local coordinates: True where the primary colour shows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PatternMask = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def solid(x: np.ndarray, y: np.ndarray, period: np.ndarray) -> np.ndarray:
    return np.ones(np.broadcast_shapes(x.shape, y.shape), dtype=bool)


def striped(x: np.ndarray, y: np.ndarray, period: np.ndarray) -> np.ndarray:
    return (x / period) % 1.0 < 0.5


def dotted(x: np.ndarray, y: np.ndarray, period: np.ndarray) -> np.ndarray:
    dx = (x / period) % 1.0 - 0.5
    dy = (y / period) % 1.0 - 0.5
    return dx * dx + dy * dy <= 0.3**2


def checkered(x: np.ndarray, y: np.ndarray, period: np.ndarray) -> np.ndarray:
    cells = np.floor(x / period) + np.floor(y / period)
    return cells % 2.0 == 0.0


PATTERN_MASKS: dict[str, PatternMask] = {
    "solid": solid,
    "striped": striped,
    "dotted": dotted,
    "checkered": checkered,
}
