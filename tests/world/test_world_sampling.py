import numpy as np
import pytest

from ltsoups.world.attributes import BACKGROUNDS, PATTERNS, SHAPES
from ltsoups.world.backgrounds import BACKGROUND_PAINTERS
from ltsoups.world.patterns import PATTERN_MASKS
from ltsoups.world.sampling import attribute_triples, balanced_rows, draw
from ltsoups.world.shapes import SHAPE_MASKS


@pytest.fixture(scope="module")
def triples() -> np.ndarray:
    return balanced_rows(np.random.default_rng(0), 200, attribute_triples())


def test_every_attribute_value_can_be_drawn() -> None:
    assert set(SHAPE_MASKS) == set(SHAPES)
    assert set(PATTERN_MASKS) == set(PATTERNS)
    assert set(BACKGROUND_PAINTERS) == set(BACKGROUNDS)


def test_draw_is_a_pure_function_of_the_seed(triples: np.ndarray) -> None:
    first, again = draw(7, triples), draw(7, triples)
    assert first.pixels.dtype == np.uint8 and first.pixels.shape == (200, 32, 32, 3)
    np.testing.assert_array_equal(first.pixels, again.pixels)
    np.testing.assert_array_equal(first.scenes.size, again.scenes.size)
    np.testing.assert_array_equal(first.scenes.background, again.scenes.background)


def test_another_seed_draws_other_images(triples: np.ndarray) -> None:
    first, other = draw(7, triples), draw(8, triples)
    assert not np.array_equal(first.pixels, other.pixels)
    np.testing.assert_array_equal(first.scenes.shape, other.scenes.shape)


def test_images_of_one_class_differ() -> None:
    sample = draw(3, np.tile(attribute_triples()[17], (24, 1)))
    flat = sample.pixels.reshape(24, -1).astype(np.int64)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).mean(axis=2)
    assert distances[~np.eye(24, dtype=bool)].min() > 5.0


def test_balanced_rows_repeat_every_row_equally() -> None:
    rows = attribute_triples()
    drawn = balanced_rows(np.random.default_rng(1), 3 * len(rows), rows)
    _, counts = np.unique(drawn, axis=0, return_counts=True)
    assert len(counts) == len(rows) and set(counts) == {3}
