"""Backgrounds: one float RGB canvas per image, drawn for each background name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BackgroundPainter = Callable[[np.random.Generator, int, int], np.ndarray]


def _flat(rng: np.random.Generator, n: int, side: int, low: float, high: float) -> np.ndarray:
    level = rng.uniform(low, high, size=(n, 1, 1, 1)) + rng.uniform(-10.0, 10.0, size=(n, 1, 1, 3))
    return np.broadcast_to(level, (n, side, side, 3)).astype(np.float32)


def dark(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    return _flat(rng, n, side, 10.0, 50.0)


def light(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    return _flat(rng, n, side, 185.0, 240.0)


def noisy(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    sigma = rng.uniform(25.0, 45.0, size=(n, 1, 1, 1)).astype(np.float32)
    return _flat(rng, n, side, 70.0, 170.0) + sigma * rng.standard_normal((n, side, side, 3), dtype=np.float32)


def gradient(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    start = rng.uniform(30.0, 220.0, size=(n, 1, 1, 3))
    stop = rng.uniform(30.0, 220.0, size=(n, 1, 1, 3))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(n, 1, 1))
    axis = np.linspace(-0.5, 0.5, side)
    ramp = np.cos(angle) * axis[None, None, :] + np.sin(angle) * axis[None, :, None]
    weight = ((ramp - ramp.min(axis=(1, 2), keepdims=True)) / np.ptp(ramp, axis=(1, 2), keepdims=True))[..., None]
    return (start + (stop - start) * weight).astype(np.float32)


BACKGROUND_PAINTERS: dict[str, BackgroundPainter] = {
    "dark": dark,
    "light": light,
    "noisy": noisy,
    "gradient": gradient,
}
