"""What each kind of plugin must provide: samplers, losses, mergers, backbones, datasets and runners.

A plugin is a class with a nested pydantic ``Params`` model and a constructor taking one ``Params``
instance. It is registered under an entry-point group (``ltsoups.samplers``, ...) by whichever
distribution provides it, ltsoups' own built-ins included.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from ltsoups.schema import SettingsModel

if TYPE_CHECKING:  # only for annotations: naming and validating plugins must not cost a torch import
    import torch
    from torch import nn

    from ltsoups.data.dataset import DatasetSplits


class PluginParams(SettingsModel):
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


@dataclass(frozen=True)
class FactorTensors:
    """One tensor (the same name) of every member trained at one imbalance factor, in member order."""

    factor: int
    members: tuple[torch.Tensor, ...]


Weights = list[tuple[Path, float]]
"""A linear merge: the weight of each checkpoint, in the order the sum adds them."""


class Merger(Plugin):
    """How θ_0 and the members become one model. Derive from one of the three kinds below:

    - `LinearMerger`: the merge is a weighted sum of checkpoints; give the weights (``coefficients``).
    - `PerTensorMerger`: each tensor of the merge is a function of the same tensor of θ_0 and of every
      member (``merge_tensor``): task vectors, TIES, DARE, ... (an `EntrywiseMerger` is handed slices).
    - `SelectingMerger`: the merge chooses its ingredients on the validation split (``select``).

    A `SearchableMerger` (a per-tensor merger that folds factors in one after another, weighted by a lambda)
    is the one kind whose lambda and number of factors ``merge.search`` can choose on the validation split.

    The streaming engine (`ltsoups.merging`) does all reading and writing, one tensor at a time.
    """


class PerTensorMerger(Merger):
    """Computes each tensor of the merged model from the same tensor of θ_0 and of every member.

    The engine reads one tensor of every input at a time, so memory is about one tensor per input
    whatever the method. Floating tensors only: integer buffers are copied from θ_0.
    """

    @abstractmethod
    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        """The merged tensor ``name`` from θ_0's (``base``) and the members' (``groups``, ascending factors).

        Inputs are in the checkpoints' dtype and must not be modified; compute in float64 and return a
        floating tensor of ``base``'s shape (the engine stores it in the checkpoints' dtype). Same
        inputs, same bits: seed any randomness from the params, ``name`` and the member's position.
        """

    def merge_prefixes(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> list[torch.Tensor]:
        """The merge of ``groups[:k]`` for k = 1..len(groups) (the running soups, one pass over the inputs).

        Override when prefixes share work (the recursive merge builds each from the previous one);
        the result must equal ``merge_tensor`` on each prefix.
        """
        return [self.merge_tensor(name, base, groups[:k]) for k in range(1, len(groups) + 1)]

    def as_weighted_sum(self, theta0: Path, groups: Sequence[FactorGroup]) -> Weights | None:
        """The merge as weights on checkpoints when it is a weighted sum, else None.

        When it is one, the engine streams it through every input a slice at a time (memory: a few MiB,
        not one tensor per input) and sums in float64 in the order given.
        """
        return None


MemberState = TypeVar("MemberState")

ENTRY_SLICE = 1 << 16
"""Entries per slice of an `EntrywiseMerger` (512 KiB of float64 per member)."""


class EntrywiseMerger(PerTensorMerger, Generic[MemberState]):
    """A per-tensor merge that goes entry by entry once it knows what it needs of each member's whole tensor
    (TIES: its magnitude threshold; DARE: the generator of its drop mask): implement the three steps below.

    The engine hands it a slice of every member's tensor at a time, so a merge holds about one tensor
    whatever the number of members; ``merge_tensor`` is the same computation on whole tensors.
    """

    @abstractmethod
    def member_state(
        self, name: str, base: torch.Tensor, factor: int, position: int, member: Callable[[], torch.Tensor]
    ) -> MemberState:
        """What the merge needs of the member at ``position`` of ``factor`` before its first slice of tensor ``name``.

        ``base``: θ_0's whole tensor in float64. ``member()`` reads the member's whole tensor (in its dtype,
        not to be modified): call it only if the state depends on it, as each call reads it once more.
        """

    @abstractmethod
    def member_slice(self, state: MemberState, base: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """The member's contribution to one slice of the merge, a new float64 tensor.

        ``base``: θ_0's slice in float64; ``member``: the member's, in its dtype (a view into a buffer the
        engine reuses); neither is to be modified. Called once per slice, slices in order.
        """

    @abstractmethod
    def combine(self, base: torch.Tensor, members: Sequence[torch.Tensor]) -> torch.Tensor:
        """The merged slice in float64 from θ_0's (float64) and the contributions of the members merged, in
        member order (not to be modified: the running soups share them)."""

    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        import torch

        wide = base.to(torch.float64)
        members = [(group.factor, p, tensor) for group in groups for p, tensor in enumerate(group.members)]
        states = [self.member_state(name, wide, f, p, lambda tensor=tensor: tensor) for f, p, tensor in members]
        flat = wide.reshape(-1)
        merged = torch.empty(flat.shape, dtype=torch.float64)
        for start in range(0, flat.numel(), ENTRY_SLICE):
            part = flat[start : start + ENTRY_SLICE]
            contributions = [
                self.member_slice(state, part, tensor.reshape(-1)[start : start + ENTRY_SLICE])
                for state, (_, _, tensor) in zip(states, members, strict=True)
            ]
            merged[start : start + ENTRY_SLICE] = self.combine(part, contributions)
        return merged.view(base.shape)


class LinearMerger(PerTensorMerger):
    """A merge that is a weighted sum of checkpoints: implement ``coefficients`` only."""

    @abstractmethod
    def coefficients(self, theta0: Path, groups: Sequence[FactorGroup]) -> Weights:
        """Weight of each checkpoint in the merged model; groups come in ascending factor order.

        Arithmetic on the layout only: no checkpoint is opened (the paths may not even exist).
        """

    def as_weighted_sum(self, theta0: Path, groups: Sequence[FactorGroup]) -> Weights:
        return self.coefficients(theta0, groups)

    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        """The weighted sum of the tensors, in the order of ``coefficients`` (what the engine computes)."""
        import torch

        theta0 = Path("<theta0>")
        placeholders = [
            FactorGroup(group.factor, tuple(Path(f"<f{group.factor}-{i}>") for i in range(len(group.members))))
            for group in groups
        ]
        tensors = {theta0: base}
        for group, standing_in in zip(groups, placeholders, strict=True):
            tensors.update(zip(standing_in.members, group.members, strict=True))
        total = base.new_zeros(base.shape, dtype=torch.float64)
        for path, weight in self.coefficients(theta0, placeholders):
            total.add_(tensors[path].to(torch.float64), alpha=weight)
        return total


class SearchableMerger(PerTensorMerger):
    """A merge that folds the factors in, smallest first, weighted by a lambda: Theta_0 = theta_0 and
    Theta_k = fold(Theta_(k-1), mean_k), where mean_k merges the replicas of the k-th factor.

    ``merge.search`` chooses lambda and N (how many factors) on the validation split for this kind only
    (the config's validation refuses a search over any other merger). It computes every mean_k once and
    each lambda's running soups from them, so ``fold`` and ``factor_tensor`` must give what
    ``merge_prefixes`` gives.
    """

    @property
    @abstractmethod
    def keep_previous(self) -> float:
        """lambda as the weight on Theta_(k-1) (the paper's convention), whatever side the params' lambda weighs."""

    @abstractmethod
    def with_lambda(self, lam: float) -> SearchableMerger:
        """The same merge with another lambda (in the params' own convention)."""

    @abstractmethod
    def factor_tensor(self, name: str, base: torch.Tensor, group: FactorTensors) -> torch.Tensor:
        """mean_k, one tensor of it, in float64: the merge of one factor's replicas (``base``: theta_0's)."""

    @abstractmethod
    def fold(self, previous: torch.Tensor, factor: torch.Tensor, stored: torch.dtype) -> torch.Tensor:
        """Theta_k from Theta_(k-1) as stored (in dtype ``stored``) and mean_k, in float64."""


class ValidationMetric(str, Enum):
    """Which validation accuracy (percent) a merge that chooses on validation maximises."""

    BALANCED = "balanced"
    FEW = "few"
    OVERALL = "overall"


@dataclass(frozen=True)
class Selection:
    """What a selecting merger chose: the soup as weights, and a JSON-able record of why (for the sidecar)."""

    weights: Weights
    record: dict[str, Any]


class SoupScorer(Protocol):
    """Scores soups on the validation split; the only data a merger is given (never the test split)."""

    def score(self, weights: Sequence[tuple[Path, float]], metric: ValidationMetric) -> float:
        """The validation accuracy ``metric`` of the weighted sum of these checkpoints (merged in memory)."""
        ...


class SelectingMerger(Merger):
    """A merge that chooses on the validation split (a greedy soup); the merge stage hands it a scorer."""

    @abstractmethod
    def select(self, theta0: Path, groups: Sequence[FactorGroup], scorer: SoupScorer) -> Selection:
        """The chosen soup of these members; the same scores give the same choice."""


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

    def architecture(self, num_classes: int) -> nn.Module:
        """The image encoder ``load`` gives, its weights left to a checkpoint (how a saved classifier is rebuilt).

        By default ``load``'s encoder; backbones override it to skip reading or downloading pretrained weights.
        """
        return self.load(num_classes).image_encoder


# ---------------------------------------------------------------------------------------- datasets


class Dataset(Plugin):
    """Provides the train/val/test splits of a classification task."""

    @abstractmethod
    def class_counts(self) -> np.ndarray:
        """Training counts per class, without loading any image (for planning)."""

    @abstractmethod
    def load(self) -> DatasetSplits: ...

    def files(self) -> Sequence[Path]:
        """Every file ``load`` reads (images, index files, class names), so that a change to one is seen.

        The `data` stage of the DVC pipeline fingerprints them. The default, none, fits generated data
        whose params say everything; a dataset read from files must list them.
        """
        return ()


# ----------------------------------------------------------------------------------------- runners


class TrainingObserver(Protocol):
    """Follows one training: a progress display, the tracker, a worker's relay to its driver."""

    def on_start(self, total_steps: int, first_step: int) -> None: ...

    def on_step(self, step: int, loss: float, lr: float) -> None: ...

    def on_validation(self, step: int, score: float) -> None: ...


Output = TypeVar("Output")
Output_co = TypeVar("Output_co", covariant=True)
Output_contra = TypeVar("Output_contra", contravariant=True)


class MemberTask(Protocol[Output_co]):
    """One member to train, self-contained and picklable: all a worker in another process or on another machine
    needs. Wherever it runs, ``train`` trains it the same way, so every runner gives the same bits."""

    @property
    def name(self) -> str:
        """How the follower and errors name the task, unique within a batch."""
        ...

    def train(self, observer: TrainingObserver) -> Output_co:
        """Train the member in this process (from its last resume state if it has one); what it trained."""
        ...


@dataclass(frozen=True)
class Worker:
    """The process an attempt at a member runs in."""

    pid: int
    host: str

    @classmethod
    def this_process(cls) -> Worker:
        return cls(os.getpid(), socket.gethostname())

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


class MemberFollower(Protocol[Output_contra]):
    """The driver's view of a batch of members: a progress display, a test's probe, a comparison's log."""

    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        """Before any training: the members to train, and those already trained from their current inputs."""

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        """An attempt at task ``member`` (its name) begins in ``worker`` (again, after a worker died); it follows
        the attempt."""

    def finished(self, member: str, output: Output_contra) -> None: ...

    def failed(self, member: str, error: str) -> None: ...


class MemberFailed(RuntimeError):
    """Members of a batch failed; the members that finished are on disk and will not be trained again."""

    def __init__(self, failures: Mapping[str, str], finished: Sequence[str], not_trained: Sequence[str]) -> None:
        self.failures, self.finished, self.not_trained = dict(failures), list(finished), list(not_trained)
        causes = "; ".join(f"member {member} failed: {error}" for member, error in self.failures.items())
        kept = f"{len(self.finished)} finished and kept" + (f" ({', '.join(self.finished)})" if self.finished else "")
        rest = f"{len(self.not_trained)} not trained" + (" (run again to train them)" if self.not_trained else "")
        super().__init__(f"{causes}; {kept}, {rest}")


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; the members that finished are on disk and will not be trained again."""

    def __init__(self, finished: Sequence[str], unfinished: Sequence[str]) -> None:
        self.finished, self.unfinished = list(finished), list(unfinished)
        kept = f"{len(self.finished)} finished and kept" + (f" ({', '.join(self.finished)})" if self.finished else "")
        super().__init__(
            f"stopped with {len(self.unfinished)} member(s) unfinished ({', '.join(self.unfinished)}); {kept}; "
            "run again to resume the others"
        )


def describe(error: BaseException) -> str:
    """How a member's error is reported to the follower and in ``MemberFailed``."""
    return f"{type(error).__name__}: {error}"


class Runner(Plugin):
    """Trains independent members: one after another in this process, or in parallel on other workers.

    A runner decides where and when each task trains, never how (``MemberTask.train``), and passes what
    a task's training returns through untouched.
    """

    @abstractmethod
    def train(self, tasks: Sequence[MemberTask[Output]], follower: MemberFollower[Output]) -> list[Output]:
        """Train every task's member; their outputs in task order.

        ``follower`` hears where each attempt runs, its training events, and each member's end. A member
        that fails stops no member already running: once those are done, raise ``MemberFailed`` naming
        every member that failed. An empty ``tasks`` costs nothing (no worker is started).
        """

    def session(self) -> AbstractContextManager[None]:
        """Keeps what the runner starts (a cluster, its workers) for every batch of the block, so that a driver
        running several batches (a comparison's members, then its merges and evaluations) starts it once."""
        return nullcontext()
