import numpy as np
import pytest

from ltsoups.data.dataset import DatasetSplits
from ltsoups.data.profiles import exponential_counts
from ltsoups.embedded.pretrain import pretraining_pairs
from ltsoups.embedded.recipe import PretrainConfig
from ltsoups.embedded.task import (
    NUM_CLASSES,
    TASK_STYLE,
    build_embedded_task,
    class_names,
    class_triples,
    size_offset,
    size_order,
)
from ltsoups.world.sampling import draw


@pytest.fixture(scope="module")
def task() -> DatasetSplits:
    return build_embedded_task(seed=0)


def test_train_split_follows_the_exponential_profile(task: DatasetSplits) -> None:
    counts = task.train.class_counts()
    np.testing.assert_array_equal(counts, exponential_counts(NUM_CLASSES, 200, 40.0))
    assert (counts > 100).sum() >= 8 and ((counts >= 20) & (counts <= 100)).sum() >= 8 and (counts < 20).sum() >= 8


def test_val_and_test_splits_are_balanced(task: DatasetSplits) -> None:
    assert set(task.val.class_counts()) == {20}
    assert set(task.test.class_counts()) == {128}
    assert task.name == "embedded"


def test_images_are_drawn_only_when_read(task: DatasetSplits) -> None:
    fresh = build_embedded_task(seed=3, n_max=12, rho=4.0, val_per_class=2, test_per_class=2)
    assert len(fresh.test) == 2 * NUM_CLASSES
    assert "pixels" not in vars(fresh.test.source)
    rows = class_triples()[size_order(3)][fresh.test.labels]
    np.testing.assert_array_equal(fresh.test.source.pixels, draw(fresh.test.source.seed, rows, TASK_STYLE).pixels)


def test_class_names_are_distinct_attribute_phrases(task: DatasetSplits) -> None:
    names = task.train.class_names
    assert len(set(names)) == NUM_CLASSES
    assert all(len(name.split()) == 3 for name in names)


def test_the_seed_draws_the_images_and_which_classes_are_large() -> None:
    small = {"n_max": 40, "rho": 10.0, "val_per_class": 2, "test_per_class": 2}
    first, other, again = (build_embedded_task(seed=s, **small) for s in (0, 1, 0))
    assert set(first.train.class_names) == set(other.train.class_names) == set(class_names(class_triples()))
    assert first.train.class_names != other.train.class_names
    assert first.train.class_names == again.train.class_names
    np.testing.assert_array_equal(first.train.class_counts(), other.train.class_counts())
    np.testing.assert_array_equal(first.train.source.pixels, again.train.source.pixels)
    assert not np.array_equal(first.train.source.pixels, other.train.source.pixels)


@pytest.mark.parametrize("num_classes", [6, 40])
def test_consecutive_world_seeds_spread_every_class_over_the_size_profile(num_classes: int) -> None:
    for first in range(0, 60, 7):
        offsets = sorted(size_offset(seed, num_classes) for seed in range(first, first + 5))
        gaps = np.diff([*offsets, offsets[0] + num_classes])
        assert gaps.max() <= num_classes / 4 + 1  # golden-ratio points: no part of the profile is skipped
        assert num_classes < 40 or len(set(offsets)) == 5
    for seed in (0, 1, 2**40 + 7):
        assert sorted(size_order(seed, num_classes)) == list(range(num_classes))


def test_pretraining_never_shows_the_task_combinations() -> None:
    config = PretrainConfig(num_pairs=2000, eval_pairs=256)
    train, _, held_out, _ = pretraining_pairs(config)
    task = {tuple(row) for row in class_triples().tolist()}
    for sample in (train, held_out):
        seen = np.stack([sample.scenes.colour, sample.scenes.pattern, sample.scenes.shape], axis=1)
        assert not {tuple(row) for row in seen.tolist()} & task
