"""Which images a long-tailed train split keeps: the authors' seeded shuffle, class after class."""

from __future__ import annotations

import numpy as np


def long_tailed_selection(labels: np.ndarray, counts: np.ndarray, seed: int) -> list[np.ndarray]:
    """Each class's indices, shuffled by one generator seeded once, in label order.

    The first ``counts[c]`` of class ``c`` form the long-tailed subset; this is the authors' draw
    (one ``np.random.default_rng(seed)`` shuffling class after class), so seed 0 gives their split.
    """
    rng = np.random.default_rng(seed)
    shuffled = []
    for label, count in enumerate(counts.tolist()):
        indices = np.flatnonzero(labels == label)
        if count > len(indices):
            raise ValueError(f"class {label} has {len(indices)} training images, the profile asks for {count}")
        rng.shuffle(indices)
        shuffled.append(indices)
    return shuffled


def kept_indices(shuffled: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """The long-tailed subset: the first ``counts[c]`` shuffled indices of each class, class after class."""
    return np.concatenate([indices[:count] for indices, count in zip(shuffled, counts.tolist(), strict=True)])
