"""Statistics of a comparison over training seeds and test images.

Two sources of uncertainty, each with its own interval:
- training seeds: a method's S runs differ by seed (subsets, data order, augmentation, init). Its
  mean +- std (sample std, ddof 1) over seeds comes with a 95% Student-t interval,
  mean +- t(0.975, S-1) * std / sqrt(S), which says nothing about the test sample;
- test images: the same test images score every method and seed, so two methods are compared on
  paired predictions. The paired bootstrap resamples test images within their class (the test
  split's class sizes stay fixed, as the split was drawn), with the same resample for both methods
  and for every seed; each replicate's statistic is the seed-mean of the per-seed differences in the
  metric. The interval is the 2.5 and 97.5 percentiles of the replicates; the two-sided p-value is
  min(1, 2 * min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (R + 1)), so the smallest reportable p is 2 / (R + 1).
  Replicates come from numpy ``default_rng(seed)``: replicate r draws, for every test image in the
  order of a stable sort by label, one ``integers(0, n_class)`` index into its class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class SeedSummary:
    """mean, std and the 95% t-interval of one number over seeds (std and interval None for one seed)."""

    mean: float
    std: float | None
    low: float | None
    high: float | None
    seeds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> SeedSummary:
        data = np.asarray(values, dtype=np.float64)
        if data.size == 0:
            raise ValueError("no values to summarise")
        mean = float(data.mean())
        if data.size == 1:
            return cls(mean, None, None, None, 1)
        from scipy.stats import t

        std = float(data.std(ddof=1))
        half = float(t.ppf(0.5 + CONFIDENCE / 2, data.size - 1)) * std / math.sqrt(data.size)
        return cls(mean, std, mean - half, mean + half, int(data.size))


def accuracy_weights(labels: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Per test sample, its weight w_i in a percent accuracy sum_i w_i [prediction_i correct].

    ``classes`` None: overall accuracy, w_i = 100 / n. Otherwise the mean of per-class accuracies over
    the classes in ``classes`` that have test samples (balanced accuracy, or a shot group):
    w_i = 100 / (C * n_(y_i)) for a sample of such a class, C the number of them, else 0.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if classes is None:
        return np.full(len(labels), 100.0 / len(labels))
    sizes = np.bincount(labels)
    counted = np.intersect1d(np.asarray(classes, dtype=np.int64), np.flatnonzero(sizes))
    if counted.size == 0:
        raise ValueError("none of these classes has a test sample")
    inside = np.isin(labels, counted)
    return np.where(inside, 100.0 / (counted.size * np.maximum(sizes[labels], 1)), 0.0)


class StratifiedBootstrap:
    """Resamples of test images, drawn with replacement within each class."""

    def __init__(self, labels: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> None:
        if resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {resamples}")
        labels = np.asarray(labels, dtype=np.int64)
        self.resamples, self.seed = resamples, seed
        self._order = np.argsort(labels, kind="stable")
        sorted_labels = labels[self._order]
        sizes = np.bincount(sorted_labels)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._first, self._size = starts[sorted_labels], sizes[sorted_labels]

    def replicates(self, columns: np.ndarray) -> np.ndarray:
        """For columns (n, q) of per-sample contributions, the column sums over each resample: (R, q)."""
        columns = np.asarray(columns, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        out = np.empty((self.resamples, columns.shape[1]))
        for r in range(self.resamples):
            picks = self._order[self._first + rng.integers(0, self._size)]
            out[r] = columns[picks].sum(axis=0)
        return out


@dataclass(frozen=True)
class PairedDifference:
    """metric(method) - metric(reference) on the same test images, averaged over the common seeds."""

    estimate: float
    low: float
    high: float
    p_value: float
    per_seed: tuple[float, ...]
    seeds: SeedSummary
    """the per-seed differences summarised over seeds (training-seed variation of the difference)"""


def paired_differences(
    correct: np.ndarray, reference: np.ndarray, weights: Sequence[np.ndarray], bootstrap: StratifiedBootstrap
) -> list[PairedDifference]:
    """One PairedDifference per metric ``weights`` (see accuracy_weights); correct arrays are (seeds, n)."""
    diff = np.asarray(correct, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    columns = np.stack([w * diff.mean(axis=0) for w in weights], axis=1)
    replicates = bootstrap.replicates(columns)
    results = []
    for q, w in enumerate(weights):
        per_seed = tuple(float(v) for v in diff @ w)
        draws = replicates[:, q]
        low, high = np.quantile(draws, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        tail = min(int((draws <= 0).sum()), int((draws >= 0).sum())) + 1
        results.append(
            PairedDifference(
                estimate=float(columns[:, q].sum()),
                low=float(low),
                high=float(high),
                p_value=min(1.0, 2.0 * tail / (len(draws) + 1)),
                per_seed=per_seed,
                seeds=SeedSummary.of(per_seed),
            )
        )
    return results
