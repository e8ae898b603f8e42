"""The embedded long-tailed task: classes named by (colour, pattern, shape), drawn from the world."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from ltsoups.data.dataset import DatasetSplits, LabelledImages
from ltsoups.data.profiles import exponential_counts
from ltsoups.world.attributes import COLOURS, PATTERNS, SHAPES
from ltsoups.world.render import RenderStyle
from ltsoups.world.sampling import attribute_triples, draw

NUM_CLASSES = 40
# The class list is part of the task's definition, not of a run: it does not change with the seed.
# The shipped mini-CLIP was pretrained with exactly these combinations held out.
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
    """The (colour, pattern, shape) rows of the task's classes, in the task's fixed (random) order."""
    triples = attribute_triples()
    if not 2 <= num_classes <= len(triples):
        raise ValueError(f"num_classes must lie in [2, {len(triples)}], got {num_classes}")
    rng = np.random.default_rng(_CLASS_SEED)
    return triples[rng.permutation(len(triples))[:num_classes]]


def size_offset(seed: int, num_classes: int) -> int:
    """How far the world ``seed`` rotates the class order along the size profile: floor(K * seed * phi) mod K.

    phi = (sqrt 5 - 1) / 2. The golden-ratio (Weyl) sequence spreads the offsets of any run of
    consecutive seeds evenly over the profile, so across a few world seeds every class is about
    as often large as small. Integer arithmetic keeps it exact for any seed.
    """
    scaled = num_classes * seed
    return (math.isqrt(5 * scaled * scaled) - scaled) // 2 % num_classes


def size_order(seed: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per label (largest class first), the index into ``class_triples`` of the class that takes it."""
    return (np.arange(num_classes) + size_offset(seed, num_classes)) % num_classes


def class_names(triples: np.ndarray) -> tuple[str, ...]:
    """Names such as "red striped triangle", one per (colour, pattern, shape) row."""
    return tuple(f"{COLOURS[c]} {PATTERNS[p]} {SHAPES[s]}" for c, p, s in triples)


def build_embedded_task(
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
    n_max: int = 200,
    rho: float = 40.0,
    val_per_class: int = 20,
    test_per_class: int = 128,
    counts: np.ndarray | None = None,
) -> DatasetSplits:
    """The long-tailed train split (exponential profile) and balanced val and test splits.

    Labels run from the largest class to the smallest.

    Args:
        seed: the world seed; draws the images and which classes are large (``size_order``). The
            set of classes is fixed.
        counts: training images per label instead of the exponential profile of n_max and rho.
    """
    triples = class_triples(num_classes)[size_order(seed, num_classes)]
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


@dataclass(frozen=True, eq=False)
class RenderedImages:
    """Images of the task drawn from the world on first access: a split a stage never reads costs nothing."""

    seed: int
    triples: np.ndarray
    """One (colour, pattern, shape) row per image."""

    def __len__(self) -> int:
        return len(self.triples)

    @cached_property
    def pixels(self) -> np.ndarray:
        """uint8 images of shape (N, 32, 32, 3), a pure function of the seed and the rows."""
        return draw(self.seed, self.triples, TASK_STYLE).pixels

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index])


def _split(seed: int, triples: np.ndarray, names: tuple[str, ...], counts: np.ndarray) -> LabelledImages:
    labels = np.repeat(np.arange(len(triples)), counts)
    return LabelledImages(RenderedImages(seed, triples[labels]), labels, names)
