"""Seed summaries, accuracy weights and the paired stratified bootstrap against hand computations."""

import math

import numpy as np
import pytest

from ltsoups.analysis.statistics import (
    SeedSummary,
    StratifiedBootstrap,
    accuracy_weights,
    paired_differences,
)

T_975_2 = 4.302652729911275  # Student t, 97.5th percentile, 2 degrees of freedom (tables: 4.303)


def test_seed_summary_is_mean_sample_std_and_t_interval() -> None:
    summary = SeedSummary.of([1.0, 2.0, 3.0])
    assert (summary.mean, summary.std, summary.seeds) == (2.0, 1.0, 3)
    half = T_975_2 * 1.0 / math.sqrt(3)
    assert (summary.low, summary.high) == (pytest.approx(2 - half), pytest.approx(2 + half))


def test_one_seed_has_no_spread() -> None:
    assert SeedSummary.of([4.0]) == SeedSummary(4.0, None, None, None, 1)


def test_accuracy_weights_reproduce_overall_balanced_and_group_accuracy() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    correct = np.array([1, 1, 1, 0, 1, 0, 1], dtype=float)
    assert accuracy_weights(labels, None) @ correct == pytest.approx(100 * 5 / 7)
    balanced = accuracy_weights(labels, np.arange(3)) @ correct
    assert balanced == pytest.approx(100 * (3 / 4 + 1 / 2 + 1) / 3)
    assert accuracy_weights(labels, np.array([1, 2, 5])) @ correct == pytest.approx(100 * (1 / 2 + 1) / 2)
    with pytest.raises(ValueError, match="has a test sample"):
        accuracy_weights(labels, np.array([7]))


def test_resamples_keep_every_class_size() -> None:
    labels = np.array([2, 0, 1, 0, 2, 2, 0, 0])
    bootstrap = StratifiedBootstrap(labels, resamples=50, seed=1)
    one_hot = np.eye(3)[labels]
    assert (bootstrap.replicates(one_hot) == np.bincount(labels)).all()


def test_resamples_follow_the_documented_draws() -> None:
    labels = np.array([1, 0, 1, 0, 0])
    values = np.arange(5, dtype=float)[:, None] ** 2
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(20):  # images sorted by label: class 0 at 1, 3, 4; class 1 at 0, 2
        offsets = rng.integers(0, np.array([3, 3, 3, 2, 2]))
        picks = np.array([1, 3, 4, 0, 2])[np.array([0, 0, 0, 3, 3]) + offsets]
        expected.append(values[picks].sum())
    got = StratifiedBootstrap(labels, resamples=20, seed=7).replicates(values)[:, 0]
    assert got.tolist() == expected


def test_one_class_of_two_images_gives_the_exact_bootstrap_distribution() -> None:
    # Differences 1 and 0 resampled twice with replacement: sums 0, 1, 2 with chances 1/4, 1/2, 1/4.
    draws = StratifiedBootstrap(np.array([0, 0]), resamples=40_000, seed=0).replicates(np.array([[1.0], [0.0]]))
    frequencies = [float((draws[:, 0] == s).mean()) for s in (0, 1, 2)]
    assert frequencies == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def test_identical_predictions_differ_by_nothing_with_p_one() -> None:
    labels = np.repeat(np.arange(4), 5)
    correct = np.random.default_rng(0).random((2, 20)) < 0.5
    bootstrap = StratifiedBootstrap(labels, resamples=200)
    (diff,) = paired_differences(correct, correct, [accuracy_weights(labels, np.arange(4))], bootstrap)
    assert (diff.estimate, diff.low, diff.high, diff.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_a_difference_in_every_resample_has_the_smallest_p() -> None:
    labels = np.repeat(np.arange(4), 5)
    better = np.ones((2, 20), dtype=bool)
    worse = better.copy()
    worse[:, labels == 0] = False  # class 0 always wrong: every resample keeps its 5 images
    worse[0, 6] = False  # and one image of class 1 on seed 0 only
    bootstrap = StratifiedBootstrap(labels, resamples=999)
    overall, class0, class3 = paired_differences(
        better,
        worse,
        [
            accuracy_weights(labels, None),
            accuracy_weights(labels, np.array([0])),
            accuracy_weights(labels, np.array([3])),
        ],
        bootstrap,
    )
    assert overall.per_seed == pytest.approx((100 * 6 / 20, 100 * 5 / 20))
    assert overall.estimate == pytest.approx(27.5)
    assert overall.p_value == pytest.approx(2 / 1000)  # no replicate at or below 0: 2 * (0 + 1) / (R + 1)
    assert 25.0 <= overall.low <= overall.estimate <= overall.high <= 25.0 + 5 * 2.5  # image 6 drawn 0..5 times
    assert (class0.estimate, class0.low, class0.high) == (100.0, 100.0, 100.0)
    assert (class3.estimate, class3.p_value) == (0.0, 1.0)


def test_the_difference_averages_seeds_and_the_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), 10)
    a, b = rng.random((3, 30)) < 0.7, rng.random((3, 30)) < 0.5
    weights = [accuracy_weights(labels, np.arange(3))]
    (first,) = paired_differences(a, b, weights, StratifiedBootstrap(labels, resamples=300, seed=11))
    per_seed = [
        100 * np.mean([a[s, labels == c].mean() - b[s, labels == c].mean() for c in range(3)]) for s in range(3)
    ]
    assert first.per_seed == pytest.approx(tuple(per_seed))
    assert first.estimate == pytest.approx(np.mean(per_seed))
    assert first.seeds == SeedSummary.of(first.per_seed)
    (again,) = paired_differences(a, b, weights, StratifiedBootstrap(labels, resamples=300, seed=11))
    (other,) = paired_differences(a, b, weights, StratifiedBootstrap(labels, resamples=300, seed=12))
    assert again == first
    assert (other.low, other.high) != (first.low, first.high)
