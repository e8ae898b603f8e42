import numpy as np
import pytest

from ltsoups.data.dataset import DatasetSplits
from ltsoups.data.profiles import exponential_counts
from ltsoups.embedded.pretrain import pretraining_pairs
from ltsoups.embedded.recipe import PretrainConfig
from ltsoups.embedded.task import NUM_CLASSES, build_embedded_task, class_triples


@pytest.fixture(scope="module")
def task() -> DatasetSplits:
    return build_embedded_task(seed=0)


def test_train_split_follows_the_exponential_profile(task: DatasetSplits) -> None:
    counts = task.train.class_counts()
    np.testing.assert_array_equal(counts, exponential_counts(NUM_CLASSES, 300, 60.0))
    assert (counts > 100).sum() >= 5 and ((counts >= 20) & (counts <= 100)).sum() >= 5 and (counts < 20).sum() >= 5


def test_val_and_test_splits_are_balanced(task: DatasetSplits) -> None:
    assert set(task.val.class_counts()) == {10}
    assert set(task.test.class_counts()) == {30}
    assert task.name == "embedded"


def test_class_names_are_distinct_attribute_phrases(task: DatasetSplits) -> None:
    names = task.train.class_names
    assert len(set(names)) == NUM_CLASSES
    assert all(len(name.split()) == 3 for name in names)


def test_the_seed_draws_the_images_not_the_classes(task: DatasetSplits) -> None:
    small = build_embedded_task(seed=0, n_max=40, rho=10.0, val_per_class=2, test_per_class=2)
    other = build_embedded_task(seed=1, n_max=40, rho=10.0, val_per_class=2, test_per_class=2)
    again = build_embedded_task(seed=0, n_max=40, rho=10.0, val_per_class=2, test_per_class=2)
    assert small.train.class_names == other.train.class_names == task.train.class_names
    np.testing.assert_array_equal(small.train.source.pixels, again.train.source.pixels)
    assert not np.array_equal(small.train.source.pixels, other.train.source.pixels)


def test_pretraining_never_shows_the_task_combinations() -> None:
    config = PretrainConfig(num_pairs=2000, eval_pairs=256)
    train, _, held_out, _ = pretraining_pairs(config)
    task = {tuple(row) for row in class_triples().tolist()}
    for sample in (train, held_out):
        seen = np.stack([sample.scenes.colour, sample.scenes.pattern, sample.scenes.shape], axis=1)
        assert not {tuple(row) for row in seen.tolist()} & task
