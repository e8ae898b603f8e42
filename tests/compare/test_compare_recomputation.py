"""Every number of the comparison report, recomputed from the saved logits by code written here, apart from the
library: accuracies, the temperature fit (scipy's bounded Brent search), NLL / ECE / Brier, means, stds,
t-intervals and the paired bootstrap (the procedure docs/compare.md states)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.stats import t
from tiny_comparison import TinyComparison

from ltsoups.predictions import Predictions

# scipy's Brent search locates a flat NLL minimum to about sqrt(float eps) of T: a few 1e-8.
TOLERANCE = {"rel": 1e-6, "abs": 1e-6}


def accuracies(
    logits: np.ndarray, labels: np.ndarray, groups: list[str], sides: list[str] | None = None
) -> dict[str, float]:
    """Overall, balanced and per shot group; with ``sides`` (head or tail per class), head and tail too."""
    hits = logits.argmax(axis=1) == labels
    per_class = {c: 100 * hits[labels == c].mean() for c in sorted(set(labels.tolist()))}
    values = {"overall": 100 * hits.mean(), "balanced": float(np.mean(list(per_class.values())))}
    for group, of_class in [(g, groups) for g in ("many", "medium", "few")] + [(s, sides) for s in ("head", "tail")]:
        inside = [acc for c, acc in per_class.items() if of_class is not None and of_class[c] == group]
        if inside:
            values[group] = float(np.mean(inside))
    return values


def nll_at(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(labels)), labels].mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray) -> float:
    confidence, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    ece = 0.0
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            ece += inside.sum() / len(labels) * abs(right[inside].mean() - confidence[inside].mean())
    return 100 * ece


def calibration(val: Predictions, test: Predictions, groups: list[str], sides: list[str]) -> dict[str, float]:
    """``groups``: each class's shot group; ``sides``: head (more than data.thresholds.head images) or tail."""
    z_val, z_test = val.logits.astype(np.float64), test.logits.astype(np.float64)
    fit = minimize_scalar(
        lambda log_t: nll_at(z_val, val.labels, math.exp(log_t)),
        bounds=(math.log(1e-2), math.log(1e2)),
        method="bounded",
        options={"xatol": 1e-11},
    )
    temperature = math.exp(fit.x)
    probs = np.exp(log_softmax(z_test / temperature, axis=1))
    labels = test.labels
    nll = -np.log(probs[np.arange(len(labels)), labels])
    brier = ((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(axis=1)
    values = {
        "temperature": temperature,
        "nll": nll.mean(),
        "ece": expected_calibration_error(probs, labels),
        "brier": brier.mean(),
    }
    sample_groups, sample_sides = np.array(groups)[labels], np.array(sides)[labels]
    for group, members in [(g, sample_groups == g) for g in ("many", "medium", "few")] + [
        (side, sample_sides == side) for side in ("head", "tail")
    ]:
        if members.any():
            values[f"nll_{group}"] = nll[members].mean()
            values[f"ece_{group}"] = expected_calibration_error(probs[members], labels[members])
            values[f"brier_{group}"] = brier[members].mean()
    return values


def sides_of(spec: dict) -> list[str]:
    head = spec["base_config"]["data"]["thresholds"]["head"]
    return ["head" if count > head else "tail" for count in spec["train_counts"]]


def check_summary(summary: dict, values: list[float]) -> None:
    assert summary["values"] == pytest.approx(values, **TOLERANCE)
    mean, std = np.mean(values), np.std(values, ddof=1)
    half = t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values))
    assert summary["mean"] == pytest.approx(mean, **TOLERANCE)
    assert summary["std"] == pytest.approx(std, **TOLERANCE)
    assert (summary["low"], summary["high"]) == (
        pytest.approx(mean - half, **TOLERANCE),
        pytest.approx(mean + half, **TOLERANCE),
    )


def load(root: Path, method: str, seed: int) -> tuple[dict, Predictions, Predictions]:
    result = json.loads((root / "runs" / method / f"seed-{seed}" / "result.json").read_text())
    return (
        result,
        Predictions.read(root / result["predictions"]["test"]),
        Predictions.read(root / result["predictions"]["val"]),
    )


@pytest.mark.slow
def test_means_stds_intervals_and_calibration_recompute_from_the_logits(comparison: TinyComparison) -> None:
    root = comparison.root
    spec = json.loads((root / "comparison.json").read_text())
    report = json.loads((root / "report" / "summary.json").read_text())
    groups, sides = spec["class_groups"], sides_of(spec)
    checked = 0
    for method in report["methods"]:
        per_seed: dict[str, list[float]] = {}
        for seed in method["seeds"]:
            result, test, val = load(root, method["method"], seed)
            numbers = {**accuracies(test.logits, test.labels, groups, sides), **calibration(val, test, groups, sides)}
            for key, value in {**numbers, **result["weight_change"]}.items():
                per_seed.setdefault(key, []).append(value)
            assert result["scores"] == pytest.approx(accuracies(test.logits, test.labels, groups), **TOLERANCE)
        assert set(method["metrics"]) == set(per_seed)
        for key, values in per_seed.items():
            check_summary(method["metrics"][key], values)
            checked += 1
    assert checked == 2 * len(per_seed)


@pytest.mark.slow
def test_paired_differences_and_bootstrap_recompute_from_the_logits(comparison: TinyComparison) -> None:
    root = comparison.root
    spec = json.loads((root / "comparison.json").read_text())
    report = json.loads((root / "report" / "summary.json").read_text())
    groups, sides = spec["class_groups"], sides_of(spec)
    settings = report["bootstrap"]
    for row in report["paired"]:
        correct, reference = [], []
        for seed in row["seeds"]:
            correct.append(load(root, row["method"], seed)[1])
            reference.append(load(root, row["reference"], seed)[1])
        labels = correct[0].labels
        of_class = {"balanced": ["balanced"] * len(groups), "few": groups, "head": sides, "tail": sides}[row["metric"]]
        classes = [c for c, g in enumerate(of_class) if g == row["metric"]]
        per_seed = [
            accuracies(a.logits, labels, groups, sides)[row["metric"]]
            - accuracies(b.logits, labels, groups, sides)[row["metric"]]
            for a, b in zip(correct, reference, strict=True)
        ]
        assert row["per_seed"] == pytest.approx(per_seed, **TOLERANCE)
        assert row["difference"] == pytest.approx(np.mean(per_seed), **TOLERANCE)

        # The documented resampling: images sorted by label (stable); each replicate draws, for every image
        # in that order, one integers(0, n_class) index into its class; the metric is then the seed-mean
        # difference of per-class means over the chosen classes.
        order = np.argsort(labels, kind="stable")
        sorted_labels = labels[order]
        sizes = np.bincount(sorted_labels)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        chosen = [c for c in classes if c < len(sizes) and sizes[c]]
        rng = np.random.default_rng(settings["seed"])
        draws = []
        for _ in range(settings["resamples"]):
            picks = order[starts[sorted_labels] + rng.integers(0, sizes[sorted_labels])]
            differences = []
            for a, b in zip(correct, reference, strict=True):
                hit_a, hit_b = a.correct[picks], b.correct[picks]
                resampled = sorted_labels  # the image at a position keeps the class of that position
                differences.append(
                    np.mean([100 * (hit_a[resampled == c].mean() - hit_b[resampled == c].mean()) for c in chosen])
                )
            draws.append(np.mean(differences))
        draws = np.array(draws)
        low, high = np.quantile(draws, [0.025, 0.975])
        tail = min((draws <= 0).sum(), (draws >= 0).sum()) + 1
        assert (row["low"], row["high"]) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
        assert row["p_value"] == pytest.approx(min(1.0, 2 * tail / (len(draws) + 1)))
