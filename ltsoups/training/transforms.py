"""Image preprocessing whose randomness comes from an explicit seed, never from global RNG state.

A sample's augmentation is a pure function of (image, seed), so a run restarted at step s sees
exactly the batches an uninterrupted run would have seen. Training images follow the training's
``augment`` settings; validation and test images follow ``evaluation`` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ltsoups.settings import AugmentSettings, EnsembleMode, EvaluationSettings, Interpolation

_MODES = {Interpolation.BICUBIC: InterpolationMode.BICUBIC, Interpolation.BILINEAR: InterpolationMode.BILINEAR}


@dataclass(frozen=True)
class Preprocess:
    """Resize/crop to the backbone's input size and normalise with its mean and std."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)

    def fixed(self, image: Image.Image, interpolation: Interpolation = Interpolation.BICUBIC) -> torch.Tensor:
        """The short side resized to the input size, the centre cropped: a training image without augmentation."""
        pixels = self._resized(image, self.image_size, interpolation)
        return self._normalise(F.center_crop(pixels, [self.image_size, self.image_size]))

    def views(self, image: Image.Image) -> torch.Tensor:
        """The evaluation views of one image, (views, C, H, W): a centre crop, or the crops of an ensemble.

        The short side is resized to round(size / crop.fraction) (+ ensemble.expand with an ensemble).
        """
        crop, ensemble = self.evaluation.crop, self.evaluation.ensemble
        size = [self.image_size, self.image_size]
        pixels = self._resized(image, round(self.image_size / crop.fraction) + ensemble.margin, crop.interpolation)
        if ensemble.mode is EnsembleMode.FIVE_CROP:
            crops = list(F.five_crop(pixels, size))
        elif ensemble.mode is EnsembleMode.TEN_CROP:
            crops = list(F.ten_crop(pixels, size))
        else:
            crops = [F.center_crop(pixels, size)]
        return self._normalise(torch.stack(crops))

    def training(self, image: Image.Image, seed: int, augment: AugmentSettings) -> torch.Tensor:
        """Random resized crop (area in crop_scale, aspect 3/4..4/3) and optional flip, drawn from ``seed``."""
        if not augment.enabled:
            return self.fixed(image, augment.interpolation)
        generator = torch.Generator().manual_seed(seed)
        pixels = F.pil_to_tensor(image)
        top, left, height, width = self._crop_box(pixels.shape[-2], pixels.shape[-1], augment.crop_scale, generator)
        pixels = F.resized_crop(
            pixels,
            top,
            left,
            height,
            width,
            [self.image_size, self.image_size],
            interpolation=_MODES[augment.interpolation],
            antialias=True,
        )
        if augment.hflip and torch.rand(1, generator=generator).item() < 0.5:
            pixels = F.horizontal_flip(pixels)
        return self._normalise(pixels)

    @staticmethod
    def _resized(image: Image.Image, short_side: int, interpolation: Interpolation) -> torch.Tensor:
        pixels = F.pil_to_tensor(image)
        return F.resize(pixels, [short_side], interpolation=_MODES[interpolation], antialias=True)

    @staticmethod
    def _crop_box(
        height: int, width: int, scale: tuple[float, float], generator: torch.Generator
    ) -> tuple[int, int, int, int]:
        area = height * width
        log_ratio = (math.log(3 / 4), math.log(4 / 3))
        for _ in range(10):
            target = area * torch.empty(1).uniform_(*scale, generator=generator).item()
            aspect = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
                return top, left, h, w
        side = min(height, width)
        return (height - side) // 2, (width - side) // 2, side, side

    @cached_property
    def _mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.mean).view(-1, 1, 1), torch.tensor(self.std).view(-1, 1, 1)

    def _normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """torchvision's to_dtype(scale=True) and normalize, op for op (same bits) without their per-call dispatch."""
        mean, std = self._mean_std
        return pixels.to(torch.float32).mul_(1.0 / 255).sub_(mean).div_(std)
