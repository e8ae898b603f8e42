"""CIFAR-100-LT and the two-axis benchmark, read through torchvision from files in the real format."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from dataset_formats import CIFAR_TEST_PER_CLASS, CIFAR_TRAIN_PER_CLASS, authors_selection, image_index

from ltsoups.data.cifar import (
    CifarSource,
    CifarSplitRule,
    ValidationSource,
    cifar100_lt_counts,
    cifar100_two_axis_counts,
    load_cifar100_lt,
    realised_two_axis,
)
from ltsoups.data.dataset import LabelledImages
from ltsoups.data.profiles import DecayCurve, exponential_counts


def unchecked(root: Path) -> CifarSource:
    # The tiny files cannot match torchvision's md5 sums for the real ones; the check is tested separately.
    return CifarSource(root, download=False, verify_checksums=False)


def indices(split: LabelledImages) -> np.ndarray:
    return np.array([image_index(split.source.image(i)) for i in range(len(split))])


def test_the_published_profile_has_10847_images() -> None:
    counts = cifar100_lt_counts(rho=100)
    assert (counts.sum(), counts.max(), counts.min()) == (10_847, 500, 5)


def test_long_tailed_train_split_has_the_exponential_counts_and_the_authors_images(cifar_root: Path) -> None:
    counts = cifar100_lt_counts(rho=10, n_max=20)
    splits = load_cifar100_lt("cifar100-lt", unchecked(cifar_root), CifarSplitRule(counts, seed=3, val_per_class=2))
    assert np.array_equal(splits.train.class_counts(), exponential_counts(100, 20, 10))
    train_labels = np.tile(np.arange(100), CIFAR_TRAIN_PER_CLASS)
    assert np.array_equal(indices(splits.train), authors_selection(train_labels, counts, seed=3))
    assert splits.train.class_names[:2] == ("fine_00", "fine_01")


def test_validation_is_the_first_test_images_of_each_class_and_test_the_rest(cifar_root: Path) -> None:
    counts = cifar100_lt_counts(rho=10, n_max=20)
    splits = load_cifar100_lt("cifar100-lt", unchecked(cifar_root), CifarSplitRule(counts, val_per_class=2))
    # The test file interleaves classes: image i has label i % 100.
    assert list(indices(splits.val)[:4]) == [0, 100, 1, 101]
    assert np.array_equal(splits.val.class_counts(), np.full(100, 2))
    assert np.array_equal(splits.test.class_counts(), np.full(100, CIFAR_TEST_PER_CLASS - 2))
    assert not set(indices(splits.val)) & set(indices(splits.test))
    assert len(splits.val) + len(splits.test) == 100 * CIFAR_TEST_PER_CLASS


def test_validation_from_train_uses_images_the_long_tail_left_out(cifar_root: Path) -> None:
    counts = cifar100_lt_counts(rho=10, n_max=20)
    rule = CifarSplitRule(counts, validation=ValidationSource.TRAIN, val_per_class=3)
    splits = load_cifar100_lt("cifar100-lt", unchecked(cifar_root), rule)
    assert np.array_equal(splits.val.class_counts(), np.full(100, 3))
    assert not set(indices(splits.val)) & set(indices(splits.train))
    assert len(splits.test) == 100 * CIFAR_TEST_PER_CLASS


def test_validation_from_train_needs_room_beside_the_largest_class(cifar_root: Path) -> None:
    rule = CifarSplitRule(cifar100_lt_counts(rho=10, n_max=100), validation=ValidationSource.TRAIN, val_per_class=3)
    with pytest.raises(ValueError, match="n_max \\+ val_per_class"):
        load_cifar100_lt("cifar100-lt", unchecked(cifar_root), rule)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train, test, meta not found .*download: true"):
        load_cifar100_lt("cifar100-lt", unchecked(tmp_path), CifarSplitRule(cifar100_lt_counts(10, 20)))


def test_torchvisions_md5_check_rejects_files_that_are_not_the_real_ones(cifar_root: Path) -> None:
    checked = CifarSource(cifar_root, download=False, verify_checksums=True)
    with pytest.raises(ValueError, match=r"md5 check.*verify_checksums: false"):
        load_cifar100_lt("cifar100-lt", checked, CifarSplitRule(cifar100_lt_counts(10, 20)))


def test_a_profile_asking_for_more_images_than_a_class_has_is_refused(cifar_root: Path) -> None:
    rule = CifarSplitRule(cifar100_lt_counts(rho=10, n_max=CIFAR_TRAIN_PER_CLASS + 1))
    with pytest.raises(ValueError, match="class 0 has 102 training images, the profile asks for 103"):
        load_cifar100_lt("cifar100-lt", unchecked(cifar_root), rule)


def authors_two_axis(head_percent: int) -> list[int]:
    """By hand, the authors' CIFAR100_IRF counts: H = head_percent classes, int(end + (start - end) e^(-5 i/(n-1)))."""
    head, tail = head_percent, 100 - head_percent

    def fall(n: int, start: float, end: float) -> list[int]:
        return [int(end + (start - end) * math.exp(-5 * i / (n - 1))) if n > 1 else int(start) for i in range(n)]

    return fall(head, 500, 101) + fall(tail, 100, 500 * 0.01)


@pytest.mark.parametrize(
    ("eta", "head_percent", "total", "head_ends", "tail_ends"),
    [
        (19, 95, 17_355, (500, 103), (100, 5)),
        (1, 50, 10_312, (500, 103), (100, 5)),
        (0.05, 5, 3_309, (500, 103), (100, 5)),
    ],
)
def test_two_axis_counts_follow_the_authors_curve(
    eta: float, head_percent: int, total: int, head_ends: tuple[int, int], tail_ends: tuple[int, int]
) -> None:
    counts = cifar100_two_axis_counts(eta, rho=100)
    by_hand = authors_two_axis(head_percent)
    assert counts.tolist() == by_hand
    assert int(counts.sum()) == sum(by_hand) == total
    head, tail = counts[:head_percent], counts[head_percent:]
    assert (head[0], head[-1]) == head_ends and (tail[0], tail[-1]) == tail_ends
    assert str(realised_two_axis(counts, eta)).startswith(f"H={head_percent}, T={100 - head_percent}, ")


@pytest.mark.parametrize("head_percent", [95, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5])
def test_eta_gives_the_authors_head_classes_for_each_of_their_settings(head_percent: int) -> None:
    # Their script's cls_split_f values; eta = f / (100 - f) must give H = int(100 * f / 100) = f.
    counts = cifar100_two_axis_counts(head_percent / (100 - head_percent))
    assert counts.tolist() == authors_two_axis(head_percent)


@pytest.mark.parametrize(("eta", "head"), [(19, 95), (9, 90), (4, 80), (1, 50), (0.25, 20), (0.1, 9), (0.05, 5)])
def test_geometric_curve_spans_each_group_exactly(eta: float, head: int) -> None:
    counts = cifar100_two_axis_counts(eta, rho=100, curve=DecayCurve.GEOMETRIC)
    realised = realised_two_axis(counts, eta)
    assert (realised.head, realised.tail) == (head, 100 - head)
    # H is whole classes: the realised eta is the nearest one H/T can express.
    assert realised.eta == pytest.approx(eta, rel=0.1)
    assert (counts[:head].max(), counts[:head].min()) == (500, 101)
    assert (counts[head:].max(), counts[head:].min()) == (100, 5)
    assert np.all(np.diff(counts) <= 0)
    assert "requested" in str(realised)


@pytest.mark.parametrize("curve", list(DecayCurve))
def test_two_axis_tail_floor_follows_rho(curve: DecayCurve) -> None:
    assert cifar100_two_axis_counts(1.0, rho=50, curve=curve)[-1] == 10
    with pytest.raises(ValueError, match="above the head/tail boundary"):
        cifar100_two_axis_counts(1.0, rho=4, curve=curve)
    with pytest.raises(ValueError, match="leaves the last tail classes without images"):
        cifar100_two_axis_counts(1.0, rho=10_000, curve=curve)
