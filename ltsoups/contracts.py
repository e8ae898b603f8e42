"""What each kind of plugin must provide: samplers, losses, mergers, backbones, datasets and runners.

A plugin is a class with a nested pydantic ``Params`` model and a constructor taking one ``Params``
instance. It is registered under an entry-point group (``ltsoups.samplers``, ...) by whichever
distribution provides it, ltsoups' own built-ins included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ltsoups.schema import StrictModel

if TYPE_CHECKING:  # only for annotations: naming and validating plugins must not cost a torch import
    import torch
    from torch import nn

    from ltsoups.data.dataset import DatasetSplits
    from ltsoups.runners.task import MemberFollower, MemberTask
    from ltsoups.stages.member import MemberOutput


class PluginParams(StrictModel):
    """Base of every plugin's parameters: unknown keys are errors, values are frozen."""


class Plugin(ABC):  # noqa: B024 - the kinds below add the abstract methods
    """Common shape of all plugins: a ``Params`` model and a one-line description."""

    Params: ClassVar[type[PluginParams]] = PluginParams
    description: ClassVar[str] = ""

    def __init__(self, params: PluginParams) -> None:
        self.params = params


# ---------------------------------------------------------------------------------------- samplers


@dataclass(frozen=True)
class SubsetDraw:
    """One member's share of the training set, as positions within each class.

    ``positions[c]`` are sorted indices into the list of samples of class ``c`` (in dataset order),
    so a draw depends only on the class counts, never on where samples sit in the dataset.
    """

    factor: int
    replica: int
    seed: int
    cap: int | None
    positions: tuple[np.ndarray, ...]

    @property
    def class_counts(self) -> list[int]:
        return [len(p) for p in self.positions]

    @property
    def size(self) -> int:
        return int(sum(self.class_counts))


class Sampler(Plugin):
    """Decides which subsets of the training data the members of a soup train on."""

    @abstractmethod
    def draws(self, class_counts: np.ndarray, seed: int) -> list[SubsetDraw]:
        """Every member's subset; a pure function of the class counts, the params and the seed."""


# ------------------------------------------------------------------------------------------ losses


LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class Loss(Plugin):
    """A classification loss that may depend on the class counts of the data it trains on."""

    @abstractmethod
    def build(self, class_counts: np.ndarray) -> LossFn:
        """A function of (logits, targets) for data with these per-class counts."""


# ----------------------------------------------------------------------------------------- mergers


@dataclass(frozen=True)
class FactorGroup:
    """The member checkpoints trained at one imbalance factor."""

    factor: int
    members: tuple[Path, ...]


class Merger(Plugin):
    """A merge expressed as weights on checkpoints; the streaming engine does the arithmetic."""

    @abstractmethod
    def coefficients(self, theta0: Path, groups: Sequence[FactorGroup]) -> list[tuple[Path, float]]:
        """Weight of each checkpoint in the merged model; groups come in ascending factor order."""


# --------------------------------------------------------------------------------------- backbones


@dataclass
class TextTower:
    """A text encoder for the head's init: ``encoder(tokenize(prompts))`` embeds prompts in the space of the
    image features. The encoder shares no weights with the image encoder, so it moves to the device alone."""

    encoder: nn.Module
    tokenize: Callable[[Sequence[str]], torch.Tensor]


@dataclass
class LoadedBackbone:
    """An image encoder ready to fine-tune, with its preprocessing and (optionally) a text tower."""

    image_encoder: nn.Module
    feature_dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    text_tower: TextTower | None = None
    """None without one: the head then starts from class-mean features."""


class Backbone(Plugin):
    """Builds a pretrained image encoder (the weights theta_0 start from)."""

    @abstractmethod
    def load(self, num_classes: int) -> LoadedBackbone:
        """The encoder for a task of ``num_classes`` classes (PEFT widths, for one, depend on it)."""


# ---------------------------------------------------------------------------------------- datasets


class Dataset(Plugin):
    """Provides the train/val/test splits of a classification task."""

    @abstractmethod
    def class_counts(self) -> np.ndarray:
        """Training counts per class, without loading any image (for planning)."""

    @abstractmethod
    def load(self) -> DatasetSplits: ...


# ----------------------------------------------------------------------------------------- runners


class Runner(Plugin):
    """Trains independent members: one after another in this process, or in parallel on other workers.

    Wherever a member trains, it trains through ``ltsoups.runners.task.train_task``: a runner only
    decides where and when, so every runner gives the same bits.
    """

    @abstractmethod
    def train(self, tasks: Sequence[MemberTask], follower: MemberFollower) -> list[MemberOutput]:
        """Train every task's member; their outputs in task order.

        ``follower`` hears where each attempt runs, its training events, and each member's end. A member
        that fails stops no member already running: once those are done, raise ``MemberFailed`` naming
        every member that failed. An empty ``tasks`` costs nothing (no worker is started).
        """
