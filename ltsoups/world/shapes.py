"""Shape silhouettes as inside-tests on local coordinates, where the circumscribed radius is 1."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ShapeMask = Callable[[np.ndarray, np.ndarray], np.ndarray]
_SQRT3 = float(np.sqrt(3.0))


def circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.75


def triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (v <= 0.5) & (-v <= 1.0 - _SQRT3 * np.abs(u))


def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    turns = (np.arctan2(u, -v) * (5.0 / (2.0 * np.pi))) % 1.0
    return np.hypot(u, v) <= 0.42 + 0.58 * np.abs(2.0 * turns - 1.0)


def ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.55**2)


def diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) / 0.7 + np.abs(v) <= 1.0


def heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.15 * u, 0.25 - 1.15 * v
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def hexagon(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return np.maximum(av, 0.5 * av + 0.5 * _SQRT3 * au) <= 0.9


def crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + v * v >= 0.75**2)


SHAPE_MASKS: dict[str, ShapeMask] = {
    "circle": circle,
    "square": square,
    "triangle": triangle,
    "cross": cross,
    "star": star,
    "ring": ring,
    "diamond": diamond,
    "heart": heart,
    "hexagon": hexagon,
    "crescent": crescent,
}
