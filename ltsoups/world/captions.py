"""Captions: English descriptions generated from a scene's attributes."""

from __future__ import annotations

import re
from dataclasses import asdict

import numpy as np

from ltsoups.world.scenes import SceneAttributes, Scenes

CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {size} {colour} {pattern} {shape} on a {background} background",
    "a photo of a {size} {colour} {pattern} {shape}.",
    "a {colour} {pattern} {shape} on a {background} background",
    "a photo of a {colour} {pattern} {shape}.",
    "a {pattern} {shape} in {colour}, {size}, on a {background} background",
)
_ARTICLE_BEFORE_VOWEL = re.compile(r"\ba (?=[aeiou])")


def caption(attributes: SceneAttributes, template: int = 0) -> str:
    """The caption of one scene in wording ``template`` (an index into ``CAPTION_TEMPLATES``)."""
    text = CAPTION_TEMPLATES[template].format(**asdict(attributes))
    return _ARTICLE_BEFORE_VOWEL.sub("an ", text)


def captions(scenes: Scenes, templates: np.ndarray) -> list[str]:
    """One caption per scene, scene ``i`` in wording ``templates[i]``."""
    return [caption(scenes.attributes(i), int(templates[i])) for i in range(len(scenes))]
