"""Scenes: the attribute values that an image is drawn from, one integer array per attribute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltsoups.world.attributes import BACKGROUNDS, COLOURS, PATTERNS, SHAPES, SIZES


@dataclass(frozen=True)
class SceneAttributes:
    """The attribute names of one scene."""

    shape: str
    colour: str
    pattern: str
    size: str
    background: str


@dataclass(frozen=True)
class Scenes:
    """Attribute indices of N scenes; each field indexes the matching vocabulary in ``attributes``."""

    shape: np.ndarray
    colour: np.ndarray
    pattern: np.ndarray
    size: np.ndarray
    background: np.ndarray

    def __post_init__(self) -> None:
        vocabularies = {
            "shape": SHAPES,
            "colour": COLOURS,
            "pattern": PATTERNS,
            "size": SIZES,
            "background": BACKGROUNDS,
        }
        for name, vocabulary in vocabularies.items():
            values = np.asarray(getattr(self, name), dtype=np.int64)
            if values.shape != (len(self),):
                raise ValueError(f"{name} has shape {values.shape}, expected ({len(self)},)")
            if len(values) and (values.min() < 0 or values.max() >= len(vocabulary)):
                raise ValueError(f"{name} indices must lie in [0, {len(vocabulary) - 1}]")
            object.__setattr__(self, name, values)

    def __len__(self) -> int:
        return int(np.asarray(self.shape).shape[0])

    def take(self, index: np.ndarray) -> Scenes:
        """The scenes at ``index``, in that order."""
        return Scenes(
            self.shape[index], self.colour[index], self.pattern[index], self.size[index], self.background[index]
        )

    def attributes(self, index: int) -> SceneAttributes:
        """The attribute names of scene ``index``."""
        return SceneAttributes(
            shape=SHAPES[self.shape[index]],
            colour=COLOURS[self.colour[index]],
            pattern=PATTERNS[self.pattern[index]],
            size=SIZES[self.size[index]],
            background=BACKGROUNDS[self.background[index]],
        )
