"""The embedded long-tailed task: classes named by (colour, pattern, shape), drawn from the world."""

from __future__ import annotations

import numpy as np

from ltsoups.data.dataset import ArrayImages, DatasetSplits, LabelledImages
from ltsoups.data.profiles import exponential_counts
from ltsoups.world.attributes import COLOURS, PATTERNS, SHAPES
from ltsoups.world.render import RenderStyle
from ltsoups.world.sampling import attribute_triples, draw

NUM_CLASSES = 40
# The class list is part of the task's definition, not of a run: it does not change with the seed.
_CLASS_SEED = 20_251_125
TASK_STYLE = RenderStyle(
    max_clutter=4,
    max_pixel_noise=12.0,
    colour_jitter=18.0,
    max_rotation_deg=40.0,
    blur_px=0.5,
    channel_gains=(1.1, 0.97, 0.8),
)
"""The task's shift from pretraining: more clutter, noise, jitter and rotation, seen through a warm, soft camera."""


def class_triples(num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The (colour, pattern, shape) rows of the task's classes, in label order (head first)."""
    triples = attribute_triples()
    if not 2 <= num_classes <= len(triples):
        raise ValueError(f"num_classes must lie in [2, {len(triples)}], got {num_classes}")
    rng = np.random.default_rng(_CLASS_SEED)
    return triples[rng.permutation(len(triples))[:num_classes]]


def class_names(triples: np.ndarray) -> tuple[str, ...]:
    """Names such as "red striped triangle", one per (colour, pattern, shape) row."""
    return tuple(f"{COLOURS[c]} {PATTERNS[p]} {SHAPES[s]}" for c, p, s in triples)


def build_embedded_task(
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
    n_max: int = 300,
    rho: float = 60.0,
    val_per_class: int = 10,
    test_per_class: int = 30,
    counts: np.ndarray | None = None,
) -> DatasetSplits:
    """The long-tailed train split (exponential profile) and balanced val and test splits.

    Args:
        seed: draws the images; the classes and their head-to-tail order are fixed.
        counts: training images per label instead of the exponential profile of n_max and rho.
    """
    triples = class_triples(num_classes)
    names = class_names(triples)
    counts = exponential_counts(num_classes, n_max, rho) if counts is None else np.asarray(counts)
    if counts.min() < 1:
        raise ValueError(f"n_max={n_max} and rho={rho} leave the last class without samples")
    train_seed, val_seed, test_seed = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3))
    return DatasetSplits(
        name="embedded",
        train=_split(train_seed, triples, names, counts),
        val=_split(val_seed, triples, names, np.full(num_classes, val_per_class)),
        test=_split(test_seed, triples, names, np.full(num_classes, test_per_class)),
    )


def _split(seed: int, triples: np.ndarray, names: tuple[str, ...], counts: np.ndarray) -> LabelledImages:
    labels = np.repeat(np.arange(len(triples)), counts)
    sample = draw(seed, triples[labels], TASK_STYLE)
    return LabelledImages(ArrayImages(sample.pixels), labels, names)
