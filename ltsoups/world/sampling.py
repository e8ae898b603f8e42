"""Sampling scenes and drawing images: every draw is a pure function of a seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltsoups.world.attributes import BACKGROUNDS, COLOURS, PATTERNS, SHAPES, SIZES
from ltsoups.world.render import RenderStyle, render
from ltsoups.world.scenes import Scenes


@dataclass(frozen=True)
class WorldSample:
    """Images and the scenes they were drawn from, in the same order."""

    scenes: Scenes
    pixels: np.ndarray


def attribute_triples() -> np.ndarray:
    """Every (colour, pattern, shape) combination of the world, as rows of indices."""
    grid = np.meshgrid(np.arange(len(COLOURS)), np.arange(len(PATTERNS)), np.arange(len(SHAPES)), indexing="ij")
    return np.stack([axis.ravel() for axis in grid], axis=1)


def balanced_rows(rng: np.random.Generator, n: int, rows: np.ndarray) -> np.ndarray:
    """``n`` rows of ``rows`` in random order, each repeated equally often (up to one)."""
    repeated = np.concatenate([np.tile(rows, (n // len(rows), 1)), rows[rng.permutation(len(rows))[: n % len(rows)]]])
    return repeated[rng.permutation(n)]


def scenes_of(rng: np.random.Generator, triples: np.ndarray, backgrounds: tuple[str, ...] = BACKGROUNDS) -> Scenes:
    """Scenes with the given (colour, pattern, shape) rows; size and background drawn uniformly."""
    n = len(triples)
    background_codes = np.array([BACKGROUNDS.index(name) for name in backgrounds])
    return Scenes(
        shape=triples[:, 2],
        colour=triples[:, 0],
        pattern=triples[:, 1],
        size=rng.integers(0, len(SIZES), size=n),
        background=background_codes[rng.integers(0, len(background_codes), size=n)],
    )


def draw(
    seed: int,
    triples: np.ndarray,
    style: RenderStyle | None = None,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
) -> WorldSample:
    """Images of scenes with the given (colour, pattern, shape) rows, a pure function of ``seed``."""
    scene_seed, render_seed = np.random.SeedSequence(seed).spawn(2)
    scenes = scenes_of(np.random.default_rng(scene_seed), np.asarray(triples, dtype=np.int64), backgrounds)
    pixels = render(scenes, np.random.default_rng(render_seed), style or RenderStyle())
    return WorldSample(scenes, pixels)
