"""The order in which a member sees its data: a pure function of (seed, step)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from ltsoups.data.dataset import LabelledImages
from ltsoups.training.settings import AugmentSettings, ScheduleSettings
from ltsoups.training.transforms import Preprocess

_MIX = 0x9E3779B1


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers, stable across runs and platforms."""
    value = 0x5EED
    for part in parts:
        value = (value * _MIX + part + 1) % (1 << 63)
        value ^= value >> 29
    return value


class StepBatches:
    """Batches for steps [start, total): each epoch a fresh permutation, the last batch of an epoch short.

    Yields lists of (sample index, augmentation seed) pairs.
    """

    def __init__(self, size: int, batch_size: int, total_steps: int, seed: int, start: int = 0) -> None:
        self.size, self.batch_size, self.total, self.seed, self.start = size, batch_size, total_steps, seed, start
        self.per_epoch = math.ceil(size / batch_size)

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start, self.total):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = torch.randperm(
                    self.size, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch))
                )
            first = (step % self.per_epoch) * self.batch_size
            picked = order[first : first + self.batch_size].tolist()
            yield [(index, derive_seed(self.seed, step, index)) for index in picked]


def steps_for(size: int, batch_size: int, schedule: ScheduleSettings) -> int:
    """``schedule.epochs`` passes over ``size`` samples, at least ``schedule.min_steps`` optimizer steps."""
    return max(schedule.min_steps, math.ceil(schedule.epochs * math.ceil(size / batch_size)))


class AugmentedSamples(Dataset):
    """Indexed by (sample index, augmentation seed); returns (image tensor, label)."""

    def __init__(self, split: LabelledImages, preprocess: Preprocess, augment: AugmentSettings) -> None:
        self.split, self.preprocess, self.augment = split, preprocess, augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image = self.split.source.image(index)
        return self.preprocess.training(image, seed, self.augment), int(self.split.labels[index])


class EvaluationSamples(Dataset):
    def __init__(self, split: LabelledImages, preprocess: Preprocess) -> None:
        self.split, self.preprocess = split, preprocess

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.preprocess.evaluation(self.split.source.image(index)), int(self.split.labels[index])
