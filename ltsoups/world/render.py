"""Rendering: scenes to 32x32 RGB uint8 images, vectorised over a batch with antialiased edges."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ltsoups.world.attributes import BACKGROUNDS, COLOUR_RGB, PATTERNS, SHAPES, SIZE_RADIUS_PX
from ltsoups.world.backgrounds import BACKGROUND_PAINTERS
from ltsoups.world.patterns import PATTERN_MASKS
from ltsoups.world.scenes import Scenes
from ltsoups.world.shapes import SHAPE_MASKS

IMAGE_SIZE = 32
_SUPERSAMPLE = 2
# The renderer draws this many scenes at a time: the supersampled float canvases stay a few tens of MB.
_CHUNK = 512


class RenderStyle(BaseModel):
    """What captions do not name: clutter, noise, colour jitter, rotation and the camera's blur and cast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_clutter: int = Field(2, ge=0, le=8, description="Most distractor blobs drawn behind the object.")
    max_pixel_noise: float = Field(6.0, ge=0.0, description="Largest std of per-pixel gaussian noise, in grey levels.")
    colour_jitter: float = Field(14.0, ge=0.0, description="Std of the per-channel offset of the object's colour.")
    max_rotation_deg: float = Field(
        30.0, ge=0.0, le=180.0, description="Objects turn uniformly within plus or minus this angle from upright."
    )
    blur_px: float = Field(0.0, ge=0.0, le=4.0, description="Std of the camera's gaussian blur, in pixels.")
    channel_gains: tuple[float, float, float] = Field(
        (1.0, 1.0, 1.0), description="The camera's fixed per-channel (R, G, B) gain: a colour cast on every image."
    )


def render(scenes: Scenes, rng: np.random.Generator, style: RenderStyle) -> np.ndarray:
    """Images of ``scenes`` as uint8 of shape (N, 32, 32, 3); nuisances are drawn from ``rng``."""
    pixels = np.empty((len(scenes), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for start in range(0, len(scenes), _CHUNK):
        index = np.arange(start, min(start + _CHUNK, len(scenes)))
        pixels[index] = _render_chunk(scenes.take(index), rng, style)
    return pixels


def _render_chunk(scenes: Scenes, rng: np.random.Generator, style: RenderStyle) -> np.ndarray:
    """Background, clutter, object, then the camera's blur, cast and noise."""
    n = len(scenes)
    canvas = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    for code, name in enumerate(BACKGROUNDS):
        rows = np.flatnonzero(scenes.background == code)
        canvas[rows] = BACKGROUND_PAINTERS[name](rng, len(rows), IMAGE_SIZE)

    bright_background = canvas.mean(axis=(1, 2, 3)) > 128.0
    samples = (np.arange(IMAGE_SIZE * _SUPERSAMPLE, dtype=np.float32) + 0.5) / _SUPERSAMPLE
    x, y = samples[None, None, :], samples[None, :, None]
    canvas = _draw_clutter(canvas, x, y, rng, style.max_clutter)
    canvas = _draw_object(canvas, scenes, x, y, rng, style, bright_background)
    # The camera sees the whole scene: blur and colour cast apply before the sensor's noise.
    canvas = _blur(canvas, style.blur_px) * np.asarray(style.channel_gains, dtype=np.float32)
    sigma = rng.uniform(0.0, style.max_pixel_noise, size=(n, 1, 1, 1)).astype(np.float32)
    canvas += sigma * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _draw_object(
    canvas: np.ndarray,
    scenes: Scenes,
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    style: RenderStyle,
    bright_background: np.ndarray,
) -> np.ndarray:
    """``canvas`` with each scene's patterned shape laid over it at a random place, size and angle."""
    n = len(scenes)
    low, high = np.asarray(SIZE_RADIUS_PX, dtype=np.float32)[scenes.size].T
    radius = rng.uniform(low, high).astype(np.float32)[:, None, None]
    margin = 0.8 * radius
    cx = rng.uniform(margin, IMAGE_SIZE - margin).astype(np.float32)
    cy = rng.uniform(margin, IMAGE_SIZE - margin).astype(np.float32)
    turn = np.deg2rad(style.max_rotation_deg)
    along, across = _object_frame(x - cx, y - cy, rng.uniform(-turn, turn, size=(n, 1, 1)).astype(np.float32))

    inside = np.zeros((n, *along.shape[1:]), dtype=bool)
    for code, name in enumerate(SHAPES):
        rows = np.flatnonzero(scenes.shape == code)
        inside[rows] = SHAPE_MASKS[name](along[rows] / radius[rows], across[rows] / radius[rows])

    period = rng.uniform(2.6, 4.0, size=(n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0.0, 1.0, size=(2, n, 1, 1)).astype(np.float32) * period
    # The pattern has its own orientation, so stripes are not always parallel to the shape's axes.
    pattern_along, pattern_across = _object_frame(along, across, rng.uniform(0.0, np.pi, size=(n, 1, 1)))
    primary = np.zeros_like(inside)
    for code, name in enumerate(PATTERNS):
        rows = np.flatnonzero(scenes.pattern == code)
        primary[rows] = PATTERN_MASKS[name](
            pattern_along[rows] + phase[0, rows], pattern_across[rows] + phase[1, rows], period[rows]
        )

    brightness = rng.uniform(0.85, 1.1, size=(n, 1))
    colour = np.clip(COLOUR_RGB[scenes.colour] * brightness + rng.normal(0.0, style.colour_jitter, (n, 3)), 0, 255)
    # The second fill contrasts with the background, so a pattern never erases the silhouette.
    dark_shade = colour * rng.uniform(0.25, 0.4, size=(n, 1))
    pale_shade = colour + (255.0 - colour) * rng.uniform(0.55, 0.7, size=(n, 1))
    shade = np.where(bright_background[:, None], dark_shade, pale_shade)
    canvas = _lay(canvas, _coverage(inside & primary), colour)
    return _lay(canvas, _coverage(inside & ~primary), shade)


def _object_frame(dx: np.ndarray, dy: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (dx, dy) in a frame turned by ``angle`` radians: coordinates along and across its axis."""
    cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    return dx * cos + dy * sin, dy * cos - dx * sin


def _draw_clutter(
    canvas: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, max_clutter: int
) -> np.ndarray:
    n = canvas.shape[0]
    count = rng.integers(0, max_clutter + 1, size=n)
    for slot in range(max_clutter):
        cx, cy = rng.uniform(0.0, IMAGE_SIZE, size=(2, n, 1, 1)).astype(np.float32)
        radius = rng.uniform(1.0, 2.5, size=(n, 1, 1)).astype(np.float32)
        square = rng.random(size=(n, 1, 1)) < 0.5
        colour = rng.uniform(0.0, 255.0, size=(n, 3)).astype(np.float32)
        dx, dy = np.abs(x - cx), np.abs(y - cy)
        blob = np.where(square, np.maximum(dx, dy) <= radius, dx * dx + dy * dy <= radius * radius)
        canvas = _lay(canvas, _coverage(blob & (slot < count)[:, None, None]), colour)
    return canvas


def _coverage(mask: np.ndarray) -> np.ndarray:
    """Fraction of each pixel's subsamples inside ``mask``, shaped (N, 32, 32, 1)."""
    hits = sum(
        mask[:, row::_SUPERSAMPLE, col::_SUPERSAMPLE].astype(np.uint8)
        for row in range(_SUPERSAMPLE)
        for col in range(_SUPERSAMPLE)
    )
    return (hits.astype(np.float32) / _SUPERSAMPLE**2)[..., None]


def _lay(canvas: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``canvas`` with one flat ``colour`` per image (N, 3) laid over it with ``coverage``."""
    return canvas * (1.0 - coverage) + coverage * colour[:, None, None, :].astype(np.float32)


def _blur(canvas: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur of (N, H, W, 3) images, edges extended."""
    if sigma == 0.0:
        return canvas
    reach = int(np.ceil(3.0 * sigma))
    weights = np.exp(-0.5 * (np.arange(-reach, reach + 1) / sigma) ** 2).astype(np.float32)
    weights /= weights.sum()
    for axis in (1, 2):
        padding = [(0, 0)] * 4
        padding[axis] = (reach, reach)
        padded = np.pad(canvas, padding, mode="edge")
        size = canvas.shape[axis]
        canvas = sum(w * np.take(padded, np.arange(k, k + size), axis=axis) for k, w in enumerate(weights))
    return canvas
