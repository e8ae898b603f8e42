"""Training cost: the samples a schedule's batches hold, and totals over several trainings."""

from __future__ import annotations

import numpy as np
import pytest

from ltsoups.settings import Sampling
from ltsoups.training.batches import ClassBalancedBatches, StepBatches
from ltsoups.training.cost import MemoryMeasure, TrainingCost, samples_seen


@pytest.mark.parametrize(
    ("size", "batch", "steps"), [(100, 16, 3), (100, 16, 7), (100, 16, 20), (64, 16, 9), (5, 8, 4)]
)
def test_samples_seen_counts_what_the_batches_hold(size: int, batch: int, steps: int) -> None:
    instance = StepBatches(size, batch, steps, seed=0)
    assert samples_seen(size, batch, steps, Sampling.INSTANCE_BALANCED) == sum(len(b) for b in instance)
    labels = np.arange(size) % 3
    balanced = ClassBalancedBatches(labels, batch, steps, seed=0)
    assert samples_seen(size, batch, steps, Sampling.CLASS_BALANCED) == sum(len(b) for b in balanced)


def test_a_total_sums_the_trainings_and_keeps_the_largest_peak() -> None:
    one = TrainingCost(
        trainings=1, steps=3, samples=48, seconds=1.5, peak_memory_bytes=10, memory_measure="process-rss"
    )
    two = TrainingCost(
        trainings=2, steps=5, samples=80, seconds=2.0, peak_memory_bytes=30, memory_measure="process-rss"
    )
    total = TrainingCost.total([one, two])
    assert (total.trainings, total.steps, total.samples, total.seconds) == (3, 8, 128, 3.5)
    assert (total.peak_memory_bytes, total.memory_measure) == (30, MemoryMeasure.PROCESS_RSS)
    assert TrainingCost.total([]).peak_memory_bytes is None
