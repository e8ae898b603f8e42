"""The order in which a training sees its data: a pure function of (seed, step), so any step can be replayed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ltsoups.data.dataset import LabelledImages
from ltsoups.settings import AugmentSettings
from ltsoups.training.transforms import Preprocess

_MIX = 0x9E3779B1
_CLASS_ORDER, _CLASS_MEMBERS = 0xC1A55, 0x5A3B1E


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers, stable across runs and platforms."""
    value = 0x5EED
    for part in parts:
        value = (value * _MIX + part + 1) % (1 << 63)
        value ^= value >> 29
    return value


def _permutation(size: int, seed: int) -> torch.Tensor:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


class StepBatches:
    """Instance-balanced batches for steps [start, total): each epoch a fresh permutation, its last batch short.

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
                order = _permutation(self.size, derive_seed(self.seed, epoch))
            first = (step % self.per_epoch) * self.batch_size
            picked = order[first : first + self.batch_size].tolist()
            yield [(index, derive_seed(self.seed, step, index)) for index in picked]


class ClassBalancedBatches:
    """Class-balanced batches for steps [start, total): Kang et al.'s class-aware sampling, replayable.

    The samples form one stream. Classes are visited in cycles, each cycle a fresh permutation of the
    classes present; a visit takes ``visit`` consecutive samples from that class's own stream, itself
    cycles of fresh permutations of the class's samples (Kang's ClassAwareSampler with
    num_samples_cls = ``visit``). Every class is therefore drawn equally often, and within a class
    every sample equally often. Position p of the stream is computed directly, so step s's batch
    (positions s*b .. s*b+b-1) needs no earlier step. Yields (sample index, augmentation seed) pairs.
    """

    def __init__(
        self, labels: np.ndarray, batch_size: int, total_steps: int, seed: int, start: int = 0, visit: int = 4
    ) -> None:
        labels = np.asarray(labels)
        self.members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.batch_size, self.total, self.seed, self.start, self.visit = batch_size, total_steps, seed, start, visit

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            drawn: dict[tuple[int, ...], torch.Tensor] = {}  # the few permutations this batch reads, each drawn once
            first = step * self.batch_size
            picked = [self._sample(first + slot, drawn) for slot in range(self.batch_size)]
            yield [(index, derive_seed(self.seed, step, slot, index)) for slot, index in enumerate(picked)]

    def _sample(self, position: int, drawn: dict[tuple[int, ...], torch.Tensor]) -> int:
        visit, within = divmod(position, self.visit)
        cycle, place = divmod(visit, len(self.members))
        k = int(self._permutation(drawn, len(self.members), _CLASS_ORDER, cycle)[place])
        members = self.members[k]
        before = cycle * self.visit + within  # samples of this class before this one: one visit per cycle
        round_, offset = divmod(before, len(members))
        return int(members[self._permutation(drawn, len(members), _CLASS_MEMBERS, k, round_)[offset]])

    def _permutation(self, drawn: dict[tuple[int, ...], torch.Tensor], size: int, *key: int) -> torch.Tensor:
        if key not in drawn:
            drawn[key] = _permutation(size, derive_seed(self.seed, *key))
        return drawn[key]


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


class ImageSamples(Dataset):
    """Every image of a split through one deterministic transform (evaluation views, unaugmented training)."""

    def __init__(self, split: LabelledImages, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.split.source.image(index)), int(self.split.labels[index])
