"""score_predictions on hand-made predictions whose accuracies are worked out by hand; predict over views."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ltsoups.data.dataset import ArrayImages, LabelledImages
from ltsoups.data.stats import ShotThresholds
from ltsoups.evaluation import EvaluationInputs, predict, score_predictions
from ltsoups.runtime import Runtime, RuntimeSettings
from ltsoups.settings import EvaluationSettings
from ltsoups.training.transforms import Preprocess

# Default thresholds: many n > 100, few n < 20, medium the rest (100 and 20 included).
# class:           0    1    2    3   4  5
TRAIN_COUNTS = [500, 101, 100, 20, 19, 3]  # many, many, medium, medium, few, few (5: absent from eval)
LABELS = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4]
PREDICTIONS = [0, 0, 0, 1, 1, 0, 2, 5, 2, 3, 4, 4]  # class 5 is predicted once, never a label


def test_overall_balanced_and_shot_groups_by_hand() -> None:
    scores = score_predictions(np.array(PREDICTIONS), np.array(LABELS), np.array(TRAIN_COUNTS), ShotThresholds())
    assert scores.overall == pytest.approx(100 * 9 / 12)  # 75.0: per sample
    # Per class 3/4, 1/2, 2/3, 1/1, 2/2; class 5 has no eval sample, so it has no accuracy and no vote.
    assert scores.per_class[:5] == pytest.approx([75.0, 50.0, 66.6667, 100.0, 100.0])
    assert math.isnan(scores.per_class[5])
    assert scores.balanced == pytest.approx((75 + 50 + 200 / 3 + 100 + 100) / 5)  # 78.33: per class
    assert scores.many == pytest.approx((75 + 50) / 2)
    assert scores.medium == pytest.approx((200 / 3 + 100) / 2)  # 100 and 20 training samples are medium
    assert scores.few == pytest.approx(100.0)  # class 4 alone: absent class 5 is left out, not counted as 0


def test_the_thresholds_decide_the_groups() -> None:
    scores = score_predictions(
        np.array(PREDICTIONS), np.array(LABELS), np.array(TRAIN_COUNTS), ShotThresholds(many=19, few=4)
    )
    assert scores.many == pytest.approx((75 + 50 + 200 / 3 + 100) / 4)  # classes 0..3
    assert scores.medium == pytest.approx(100.0)  # class 4 (19 samples: not more than 19)
    assert scores.few is None  # class 5 alone, and it has no eval sample


def test_an_empty_group_is_none_and_left_out_of_the_headline() -> None:
    # No class has 20..100 training samples; the only few-shot class has no eval sample.
    scores = score_predictions(
        np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), np.array([500, 200, 5]), ShotThresholds()
    )
    assert (scores.many, scores.medium, scores.few) == (pytest.approx(75.0), None, None)
    assert scores.headline() == {"overall": 75.0, "balanced": 75.0, "many": 75.0}


def test_predict_averages_the_logits_of_the_ensemble_views() -> None:
    class CornerLogits(nn.Module):
        """Logits = the mean colour of the top-left 8 x 8 pixels: different for every view."""

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images[..., :8, :8].mean(dim=(-2, -1))

    pixels = np.random.default_rng(3).integers(0, 256, (3, 48, 40, 3), dtype=np.uint8)
    split = LabelledImages(ArrayImages(pixels), np.array([0, 1, 2]), ("a", "b", "c"))
    settings = EvaluationSettings.model_validate({"ensemble": {"mode": "ten-crop", "expand": 8}})
    preprocess = Preprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), settings)
    logits = predict(CornerLogits(), EvaluationInputs(split, preprocess, Runtime.of(RuntimeSettings(device="cpu"))))
    by_hand = np.stack([CornerLogits()(preprocess.views(split.source.image(i))).mean(dim=0).numpy() for i in range(3)])
    assert logits.shape == (3, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, by_hand, rtol=1e-6)
    plain = Preprocess(32, (0.5,) * 3, (0.25,) * 3)
    single = predict(CornerLogits(), EvaluationInputs(split, plain, Runtime.of(RuntimeSettings())))
    assert not np.allclose(logits, single)  # the views changed the prediction: the test can tell them apart


class CountedImages:
    """Images in memory that count their reads: each read is one image preprocessed."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.images, self.reads = ArrayImages(pixels), 0

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> Image.Image:
        self.reads += 1
        return self.images.image(index)


@pytest.mark.parametrize("keep_bytes, reads_on_the_second_pass", [(1 << 30, 0), (0, 600)])
def test_evaluation_inputs_are_preprocessed_once_when_they_fit(keep_bytes: int, reads_on_the_second_pass: int) -> None:
    images = CountedImages(np.random.default_rng(5).integers(0, 256, (600, 40, 36, 3), dtype=np.uint8))
    split = LabelledImages(images, np.arange(600) % 3, ("a", "b", "c"))
    inputs = EvaluationInputs(split, Preprocess(32, (0.5,) * 3, (0.25,) * 3), Runtime.of(RuntimeSettings()), keep_bytes)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3))
    first = predict(model, inputs)
    assert images.reads == 600  # three batches of up to 256
    second = predict(model, inputs)
    assert images.reads == 600 + reads_on_the_second_pass
    np.testing.assert_array_equal(first, second)
    assert first.shape == (600, 3)
