"""NLL, ECE, Brier and the temperature fit against hand computations on small arrays."""

import math

import numpy as np
import pytest

from ltsoups.analysis.calibration import (
    TEMPERATURE_RANGE,
    brier_scores,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    negative_log_likelihood,
)
from ltsoups.data.stats import ClassStats, ShotThresholds

LN3 = math.log(3.0)


def test_nll_and_brier_of_one_sample_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    assert negative_log_likelihood(np.log(probs), np.array([0]))[0] == pytest.approx(-math.log(0.7))
    assert brier_scores(probs, np.array([0]))[0] == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)  # 0.14
    assert brier_scores(probs, np.array([2]))[0] == pytest.approx(0.7**2 + 0.2**2 + 0.9**2)  # 1.34


def test_ece_over_fifteen_bins_by_hand() -> None:
    # confidence (bin of width 1/15), correct?: 0.90 (bin 14) yes, 0.78 (bin 12) no, 0.55 (bin 9) yes,
    # 0.70 (bin 11) yes, 0.92 (bin 14) no.
    probs = np.array([[0.9, 0.1], [0.78, 0.22], [0.55, 0.45], [0.3, 0.7], [0.92, 0.08]])
    labels = np.array([0, 1, 0, 1, 1])
    # bin 14 holds two samples: accuracy 1/2, mean confidence 0.91; the others one each.
    expected = 100 * (2 / 5 * abs(0.5 - 0.91) + 1 / 5 * (0.78 + 0.45 + 0.30))  # 47.0
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    assert expected == pytest.approx(47.0)


def test_a_confidence_on_a_bin_edge_belongs_to_the_lower_bin() -> None:
    # 0.5 = 7.5/15 is inside bin 8 = (7/15, 8/15]; 0.6 = 9/15 is the upper edge of bin 9 = (8/15, 9/15].
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 0, 1])
    expected = 100 * (1 / 3 * abs(1 - 0.5) + 2 / 3 * abs(0.5 - 0.6))
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_temperature_fit_solves_the_two_class_case_exactly() -> None:
    # Logit gap d = 2 on every sample, right on 3 of 4: the NLL is minimal where sigmoid(2 / T) = 3/4,
    # i.e. T = 2 / ln 3 = 1.8205.
    logits = np.array([[2.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert fit_temperature(logits, labels) == pytest.approx(2 / LN3, rel=1e-9)


def test_temperature_fit_is_the_minimum_of_the_nll_on_random_logits() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, size=(200, 7))
    labels = np.where(rng.random(200) < 0.6, logits.argmax(axis=1), rng.integers(0, 7, 200))
    fitted = fit_temperature(logits, labels)

    def nll(t: float) -> float:
        return float(negative_log_likelihood(log_softmax(logits, t), labels).mean())

    grid = np.exp(np.linspace(math.log(0.05), math.log(20), 20_001))
    best = grid[np.argmin([nll(t) for t in grid])]
    assert fitted == pytest.approx(best, rel=1e-3)
    assert nll(fitted) <= min(nll(fitted * 1.001), nll(fitted / 1.001))
    assert fit_temperature(logits, labels) == fitted  # deterministic, bit for bit


def test_temperature_stays_in_range_when_the_nll_has_no_interior_minimum() -> None:
    confident_and_right = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(confident_and_right, np.array([0, 1])) == TEMPERATURE_RANGE[0]
    always_wrong = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(always_wrong, np.array([1, 0])) == TEMPERATURE_RANGE[1]


def test_calibrate_reports_overall_and_per_group_after_the_fitted_temperature() -> None:
    # Validation: gap ln 3 everywhere, right on 3 of 4 -> sigmoid(ln 3 / T) = 3/4 at T = 1.
    val_logits, val_labels = np.array([[LN3, 0.0]] * 4), np.array([0, 0, 0, 1])
    # Test: class 0 (many-shot, head) predicted right with p = 3/4, class 1 (few-shot, tail) wrong with p(y) = 1/4.
    test_logits, test_labels = np.array([[LN3, 0.0], [LN3, 0.0]]), np.array([0, 1])
    class_groups = [("many", "head"), ("few", "tail")]
    result = calibrate(val_logits, val_labels, test_logits, test_labels, class_groups)
    assert result.temperature == pytest.approx(1.0, rel=1e-9)
    nll = {"many": -math.log(0.75), "few": math.log(4), "head": -math.log(0.75), "tail": math.log(4)}
    assert result.nll_groups == pytest.approx(nll)
    brier = {"many": 2 * 0.25**2, "few": 2 * 0.75**2, "head": 2 * 0.25**2, "tail": 2 * 0.75**2}
    assert result.brier_groups == pytest.approx(brier)
    # Alone in its group, each sample is its own bin: |1 - 3/4| for the right one, |0 - 3/4| for the wrong one.
    assert result.ece_groups == pytest.approx({"many": 25.0, "few": 75.0, "head": 25.0, "tail": 75.0})
    assert result.nll == pytest.approx((-math.log(0.75) + math.log(4)) / 2)
    assert result.brier == pytest.approx((0.125 + 1.125) / 2)
    # Both confidences are 3/4 (bin 12 = (11/15, 12/15]); accuracy 1/2.
    assert result.ece == pytest.approx(100 * abs(0.5 - 0.75))
    assert set(result.as_dict()) == {
        "temperature", "nll", "ece", "brier",
        *(f"{metric}_{group}" for metric in ("nll", "ece", "brier") for group in ("many", "few", "head", "tail")),
    }  # fmt: skip


def test_head_and_tail_split_classes_at_the_head_threshold_not_at_the_shot_groups() -> None:
    # Training counts 150 / 60 / 10 with head at 50: the medium class is a head class.
    stats = ClassStats(np.array([150, 60, 10]), ShotThresholds(many=100, few=20, head=50))
    assert stats.class_groups() == [("many", "head"), ("medium", "head"), ("few", "tail")]
    # Three test images, one per class, each right with p = 3/4 except the few-shot one (p(y) = 1/4).
    logits = np.array([[LN3, 0.0, 0.0], [0.0, LN3, 0.0], [LN3, 0.0, 0.0]])
    labels = np.array([0, 1, 2])
    result = calibrate(logits, labels, logits, labels, stats.class_groups())
    fitted = np.exp(log_softmax(logits, result.temperature))
    head = float(-np.log(fitted[[0, 1], [0, 1]]).mean())
    tail = float(-np.log(fitted[2, 2]))
    assert result.nll_groups["head"] == pytest.approx(head)
    assert result.nll_groups["tail"] == pytest.approx(tail)
    assert result.nll == pytest.approx((2 * head + tail) / 3)
