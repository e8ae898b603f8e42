"""Evaluation views: the crop (open_clip's or the authors'), and LIFT's five- and ten-crop ensembles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ltsoups.settings import AugmentSettings, EvaluationSettings, Interpolation
from ltsoups.training.transforms import Preprocess

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _preprocess(size: int, **evaluation: object) -> Preprocess:
    return Preprocess(size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), EvaluationSettings.model_validate(evaluation))


def _quadrants(side: int) -> Image.Image:
    """Top-left red, top-right green, bottom-left blue, bottom-right white."""
    half = side // 2
    pixels = np.zeros((side, side, 3), dtype=np.uint8)
    pixels[:half, :half], pixels[:half, half:], pixels[half:, :half], pixels[half:, half:] = RED, GREEN, BLUE, WHITE
    return Image.fromarray(pixels)


def _colour(view: torch.Tensor) -> tuple[int, ...]:
    return tuple(round(255 * float(c)) for c in view.mean(dim=(-2, -1)))


def test_the_default_view_is_the_unaugmented_training_image_bit_for_bit() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    preprocess = _preprocess(32)
    views = preprocess.views(image)
    assert views.shape == (1, 3, 32, 32)
    assert torch.equal(views[0], preprocess.fixed(image))
    assert torch.equal(views[0], preprocess.training(image, 0, AugmentSettings(enabled=False)))


def test_a_crop_fraction_keeps_only_the_centre() -> None:
    """Fraction 0.5: the short side resized to twice the input size, so the crop is the inner half of the image."""
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[16:48, 16:48] = WHITE
    image = Image.fromarray(pixels)
    assert _colour(_preprocess(32, crop={"fraction": 0.5}).views(image)[0]) == WHITE
    assert _colour(_preprocess(32).views(image)[0]) == (64, 64, 64)  # the whole image: a quarter of it white


def test_the_authors_crop_resizes_224_to_256() -> None:
    """Resize(256) + CenterCrop(224): a 256 x 256 image is not resized at all, only cropped."""
    pixels = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    view = _preprocess(224, crop={"fraction": 0.875, "interpolation": "bilinear"}).views(Image.fromarray(pixels))[0]
    expected = torch.as_tensor(pixels[16:240, 16:240]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(view, expected, rtol=0, atol=1e-6)


def test_five_crop_is_the_four_corners_and_the_centre_of_the_enlarged_image() -> None:
    """Input 32, expand 32: the 64-pixel image is resized to 64 (as is), so each corner crop is one quadrant."""
    views = _preprocess(32, ensemble={"mode": "five-crop", "expand": 32}).views(_quadrants(64))
    assert views.shape == (5, 3, 32, 32)
    assert [_colour(view) for view in views[:4]] == [RED, GREEN, BLUE, WHITE]
    assert _colour(views[4]) == tuple(round(sum(c) / 4) for c in zip(RED, GREEN, BLUE, WHITE, strict=True))


def test_ten_crop_adds_the_five_crops_of_the_mirrored_image() -> None:
    views = _preprocess(32, ensemble={"mode": "ten-crop", "expand": 32}).views(_quadrants(64))
    assert views.shape == (10, 3, 32, 32)
    assert [_colour(view) for view in views[5:9]] == [GREEN, RED, WHITE, BLUE]
    assert torch.equal(views[5], views[1].flip(-1))


def test_lifts_expand_is_24_pixels_by_default() -> None:
    settings = EvaluationSettings.model_validate({"ensemble": {"mode": "five-crop"}})
    assert settings.ensemble.margin == 24
    assert _preprocess(224, ensemble={"mode": "five-crop"}).views(_quadrants(248)).shape == (5, 3, 224, 224)


def test_expand_without_an_ensemble_is_an_error() -> None:
    with pytest.raises(ValueError, match="expand 24 has no effect with mode none"):
        EvaluationSettings.model_validate({"ensemble": {"expand": 24}})


def test_training_crops_follow_their_own_interpolation() -> None:
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    preprocess = _preprocess(32)
    bicubic = preprocess.training(image, 5, AugmentSettings())
    bilinear = preprocess.training(image, 5, AugmentSettings(interpolation=Interpolation.BILINEAR))
    assert bicubic.shape == bilinear.shape and not torch.equal(bicubic, bilinear)
