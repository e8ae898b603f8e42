"""The world's vocabulary: the values each attribute of a scene can take."""

from __future__ import annotations

import numpy as np

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "star",
    "ring",
    "diamond",
    "heart",
    "hexagon",
    "crescent",
)
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "checkered")
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("dark", "light", "noisy", "gradient")

COLOUR_RGB: np.ndarray = np.array(
    [
        (220, 40, 40),
        (245, 140, 30),
        (235, 215, 40),
        (50, 170, 60),
        (40, 200, 210),
        (45, 85, 225),
        (140, 60, 200),
        (245, 125, 185),
    ],
    dtype=np.float32,
)
"""Reference RGB of each colour in ``COLOURS``, before per-image jitter."""

SIZE_RADIUS_PX: tuple[tuple[float, float], ...] = ((6.5, 8.5), (10.5, 14.0))
"""Range of the circumscribed radius, in pixels, of each size in ``SIZES``."""
