"""Which samples each step's batch holds: instance-balanced epochs, or class-balanced (Kang et al.) batches."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ltsoups.settings import EpochSteps, ScheduleSettings
from ltsoups.training.batches import ClassBalancedBatches, StepBatches
from ltsoups.training.schedule import steps_for, steps_per_epoch

# A long tail: 200, 40, 9, 3 and 1 samples, shuffled into dataset order.
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(5), [200, 40, 9, 3, 1]))


def _drawn(batches: ClassBalancedBatches | StepBatches) -> list[int]:
    return [index for batch in batches for index, _ in batch]


def test_class_balanced_batches_draw_every_class_equally_often_over_many_batches() -> None:
    batches = ClassBalancedBatches(LABELS, batch_size=16, total_steps=250, seed=7, visit=4)
    drawn = _drawn(batches)
    per_class = Counter(LABELS[drawn].tolist())
    # 4000 draws in 200 whole cycles of 5 classes x 4 samples: exactly 800 each, whatever the class size
    assert per_class == {0: 800, 1: 800, 2: 800, 3: 800, 4: 800}
    instance = Counter(LABELS[_drawn(StepBatches(len(LABELS), 16, 250, seed=7))].tolist())
    assert instance[0] > 50 * instance[4]  # the instance-balanced batches follow the tail, as they should


def test_within_a_class_every_sample_is_drawn_equally_often() -> None:
    drawn = _drawn(ClassBalancedBatches(LABELS, batch_size=16, total_steps=250, seed=7, visit=4))
    for label, size in ((1, 40), (2, 9), (3, 3)):
        counts = Counter(index for index in drawn if LABELS[index] == label)
        assert len(counts) == size  # every sample of the class is drawn
        assert max(counts.values()) - min(counts.values()) <= 1  # in shuffled cycles, never twice ahead


def test_a_visit_takes_consecutive_samples_of_one_class() -> None:
    drawn = _drawn(ClassBalancedBatches(LABELS, batch_size=20, total_steps=10, seed=1, visit=4))
    visits = [LABELS[drawn[i : i + 4]] for i in range(0, len(drawn), 4)]
    assert all(len(set(visit.tolist())) == 1 for visit in visits)
    cycles = [sorted(int(visit[0]) for visit in visits[i : i + 5]) for i in range(0, len(visits), 5)]
    assert all(cycle == [0, 1, 2, 3, 4] for cycle in cycles)  # each cycle visits every class once
    assert len({tuple(int(v[0]) for v in visits[i : i + 5]) for i in range(0, len(visits), 5)}) > 1  # reshuffled


def test_class_balanced_batches_replay_from_any_step_and_follow_the_seed() -> None:
    full = list(ClassBalancedBatches(LABELS, batch_size=16, total_steps=30, seed=3))
    assert list(ClassBalancedBatches(LABELS, batch_size=16, total_steps=30, seed=3, start=17)) == full[17:]
    assert full != list(ClassBalancedBatches(LABELS, batch_size=16, total_steps=30, seed=4))
    seeds = [seed for batch in full for _, seed in batch]
    assert len(set(seeds)) == len(seeds)  # a sample drawn twice in a batch is augmented twice, differently


def test_a_class_absent_from_the_data_is_never_drawn() -> None:
    labels = np.array([0, 0, 0, 2, 2, 5])
    drawn = _drawn(ClassBalancedBatches(labels, batch_size=6, total_steps=10, seed=0, visit=1))
    assert Counter(labels[drawn].tolist()) == {0: 20, 2: 20, 5: 20}


@pytest.mark.parametrize(
    ("size", "ours", "authors"),
    [(7296, 57, 58), (9959, 78, 78), (500, 4, 4), (128, 1, 2)],  # 7,296 = 57 x 128: CIFAR's 2^5 subset
)
def test_steps_per_epoch_ceil_and_the_authors_floor_plus_one(size: int, ours: int, authors: int) -> None:
    assert steps_per_epoch(size, 128, EpochSteps.CEIL) == ours
    assert steps_per_epoch(size, 128, EpochSteps.FLOOR_PLUS_ONE) == authors


def test_the_authors_rule_gives_their_step_table() -> None:
    """official-code-facts.md, section 4: n_steps = max(10 * (n // 128 + 1), 100) per CIFAR-100-LT factor."""
    schedule = ScheduleSettings(epochs=10, min_steps=100, epoch_steps="floor-plus-one")
    sizes = [500, 949, 1705, 2926, 4777, 7296, 9959, 10847]
    assert [steps_for(n, 128, schedule) for n in sizes] == [100, 100, 140, 230, 380, 580, 780, 850]
    assert steps_for(7296, 128, ScheduleSettings(epochs=10, min_steps=100)) == 570  # ours: one pass is 57 batches
