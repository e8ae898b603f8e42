import numpy as np
import pytest

from ltsoups.world.attributes import BACKGROUNDS, COLOUR_RGB, COLOURS, PATTERNS, SHAPES, SIZES
from ltsoups.world.captions import CAPTION_TEMPLATES, caption, captions
from ltsoups.world.render import RenderStyle
from ltsoups.world.sampling import attribute_triples, balanced_rows, draw
from ltsoups.world.scenes import SceneAttributes

_PLAIN = RenderStyle(max_clutter=0, max_pixel_noise=0.0, colour_jitter=0.0)


def test_caption_names_every_attribute() -> None:
    scene = SceneAttributes(shape="triangle", colour="red", pattern="striped", size="small", background="dark")
    assert caption(scene) == "a small red striped triangle on a dark background"
    for template in range(len(CAPTION_TEMPLATES)):
        words = caption(scene, template).replace(",", " ").replace(".", " ").split()
        assert {"red", "striped", "triangle"} <= set(words)


def test_article_agrees_with_the_next_word() -> None:
    scene = SceneAttributes(shape="ring", colour="orange", pattern="solid", size="large", background="light")
    assert caption(scene, 3) == "a photo of an orange solid ring."


def test_captions_match_the_scenes_that_drew_the_images() -> None:
    sample = draw(5, balanced_rows(np.random.default_rng(5), 100, attribute_triples()))
    texts = captions(sample.scenes, np.zeros(100, dtype=np.int64))
    for i, text in enumerate(texts):
        words = text.split()
        assert words[1] == SIZES[sample.scenes.size[i]]
        assert words[2] == COLOURS[sample.scenes.colour[i]]
        assert words[3] == PATTERNS[sample.scenes.pattern[i]]
        assert words[4] == SHAPES[sample.scenes.shape[i]]
        assert words[7] == BACKGROUNDS[sample.scenes.background[i]]


@pytest.mark.parametrize("colour", range(len(COLOURS)))
def test_the_named_colour_is_the_colour_drawn(colour: int) -> None:
    filled_centres = [SHAPES.index(s) for s in ("circle", "square", "diamond", "hexagon", "heart", "star")]
    triples = np.array([(colour, PATTERNS.index("solid"), shape) for shape in filled_centres] * 4)
    sample = draw(colour, triples, _PLAIN, backgrounds=("dark", "light"))
    for i in range(len(triples)):
        nearest = np.argmin(np.linalg.norm(COLOUR_RGB - _object_colour(sample.pixels[i]), axis=1))
        assert COLOURS[nearest] == COLOURS[colour]


def test_large_objects_cover_more_pixels_than_small_ones() -> None:
    triples = np.tile(attribute_triples()[:40], (5, 1))
    sample = draw(11, triples, _PLAIN, backgrounds=("dark",))
    covered = (sample.pixels.max(axis=3) > 80).sum(axis=(1, 2))
    small, large = covered[sample.scenes.size == 0], covered[sample.scenes.size == 1]
    assert np.median(large) > 2 * np.median(small)


def test_dark_and_light_backgrounds_are_dark_and_light() -> None:
    sample = draw(2, np.tile(attribute_triples()[:20], (4, 1)), _PLAIN, backgrounds=("dark", "light"))
    border = np.concatenate([sample.pixels[:, 0], sample.pixels[:, -1]], axis=1).mean(axis=2)
    brightness = np.median(border, axis=1)
    dark = sample.scenes.background == BACKGROUNDS.index("dark")
    assert brightness[dark].max() < 80 < 160 < brightness[~dark].min()


def _object_colour(image: np.ndarray) -> np.ndarray:
    """Without clutter or noise both background and solid fill are flat: the fill is the commonest non-border value."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    values, counts = np.unique(border, axis=0, return_counts=True)
    background = values[np.argmax(counts)]
    inner = image.reshape(-1, 3)
    values, counts = np.unique(inner[(inner != background).any(axis=1)], axis=0, return_counts=True)
    return values[np.argmax(counts)].astype(np.float32)
