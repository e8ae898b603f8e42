"""Preprocessing gives torchvision's bits: resize, crop, scale to [0, 1] and normalise, op for op."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ltsoups.training.transforms import Preprocess

CLIP = Preprocess(32, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


@pytest.mark.parametrize("side", [24, 32, 57])
def test_evaluation_transform_matches_torchvision_bit_for_bit(side: int) -> None:
    pixels = np.random.default_rng(side).integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    expected = F.pil_to_tensor(image)
    expected = F.resize(expected, [32], interpolation=InterpolationMode.BICUBIC, antialias=True)
    expected = F.center_crop(expected, [32, 32])
    expected = F.normalize(F.to_dtype(expected, torch.float32, scale=True), list(CLIP.mean), list(CLIP.std))
    assert torch.equal(CLIP.fixed(image), expected)
