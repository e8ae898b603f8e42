"""Helpers of the runner tests: a tiny run on disk that tests clone, and a follower that records a batch."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tiny_config import ONE_ROUND_MEMBERS

from ltsoups.config import LtSoupsConfig, load_config
from ltsoups.contracts import Worker
from ltsoups.runners.task import SilentFollower
from ltsoups.stages.member import MemberOutput
from ltsoups.training.loop import SilentObserver, TrainingObserver
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class Run:
    """A folder with params.yaml and outputs/; ``config`` adds overrides (``workdir`` is always this folder's)."""

    root: Path

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.root / "outputs")

    def config(self, *overrides: str) -> LtSoupsConfig:
        return load_config(self.root / "params.yaml", [*overrides, f"workdir={self.workspace.root}"])

    def clone(self, dest: Path) -> Run:
        shutil.copytree(self.root, dest)
        return Run(dest)

    def member_digests(self) -> dict[str, str]:
        return {
            member: hashlib.sha256(self.workspace.member(member).read_bytes()).hexdigest()
            for member in ONE_ROUND_MEMBERS
            if self.workspace.member(member).is_file()
        }


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch on ``count`` threads for the block: CPU results depend on how many threads share a reduction."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Probe(SilentFollower):
    """A follower that records what a batch did; ``on_step(member, worker, attempt, step)`` runs at each step."""

    on_step: Callable[[str, Worker, int, int], None] | None = None
    pending: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    workers: dict[str, list[Worker]] = field(default_factory=dict)
    finished_members: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        self.pending, self.up_to_date = list(pending), list(up_to_date)

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        attempts = self.workers.setdefault(member, [])
        attempts.append(worker)
        if self.on_step is None:
            return SilentObserver()
        return StepProbe(lambda step: self.on_step(member, worker, len(attempts), step))

    def finished(self, member: str, output: MemberOutput) -> None:
        self.finished_members.append(member)

    def failed(self, member: str, error: str) -> None:
        self.failures[member] = error


class StepProbe(SilentObserver):
    def __init__(self, at_step: Callable[[int], None]) -> None:
        self.at_step = at_step

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.at_step(step)
