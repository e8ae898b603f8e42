"""What a runner runs: one member as a self-contained task, and the function that trains it in any process."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ltsoups.config import LtSoupsConfig
from ltsoups.workspace import Workspace

if TYPE_CHECKING:  # torch loads when a member trains, not when a runner plugin is listed
    from ltsoups.stages.context import RunContext
    from ltsoups.stages.member import MemberJob, MemberOutput
    from ltsoups.training.loop import TrainingObserver


class MemberHooks(Protocol):
    """Logs one member's training in the process that trains it (the tracking layer's PipelineTracker is one)."""

    def start_member(self, job: MemberJob) -> TrainingObserver: ...

    def member_trained(self, output: MemberOutput) -> None: ...

    def close(self, error: BaseException | None = None) -> None: ...


class MemberTracking(Protocol):
    """Sent with each task (so picklable): opens the member's hooks wherever the member trains."""

    def open(self, config: LtSoupsConfig, workspace: Workspace) -> MemberHooks: ...


@dataclass(frozen=True)
class MemberTask:
    """One member to train, holding everything a worker in another process or on another machine needs."""

    config: LtSoupsConfig
    workspace: Workspace
    member: str
    directory: Path
    """The driver's working directory. Relative paths of the config (data, weights, workdir) resolve from it,
    so it must exist at the same path wherever the member trains: on a cluster, a shared filesystem."""
    tracking: MemberTracking | None = None
    label: str | None = None
    """How the follower and errors name the task, unique within a batch (a comparison trains the same member id
    in several workdirs); default: the member id."""

    @property
    def name(self) -> str:
        return self.label or self.member


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


class MemberFollower(Protocol):
    """The driver's view of a batch of members: a progress display, a test's probe, a comparison's log."""

    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        """Before any training: the members to train, and those already trained from their current inputs."""

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        """An attempt at task ``member`` (its name) begins in ``worker`` (again, after a worker died); it follows
        the attempt."""

    def finished(self, member: str, output: MemberOutput) -> None: ...

    def failed(self, member: str, error: str) -> None: ...


class SilentFollower:
    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        pass

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        from ltsoups.training.loop import SilentObserver

        return SilentObserver()

    def finished(self, member: str, output: MemberOutput) -> None:
        pass

    def failed(self, member: str, error: str) -> None:
        pass


class MemberFailed(RuntimeError):
    """Members of a batch failed; the members that finished are on disk and will not be trained again."""

    def __init__(self, failures: Mapping[str, str], finished: Sequence[str], not_trained: Sequence[str]) -> None:
        self.failures, self.finished, self.not_trained = dict(failures), list(finished), list(not_trained)
        causes = "; ".join(f"member {member} failed: {error}" for member, error in self.failures.items())
        kept = f"{len(self.finished)} finished and kept" + (f" ({', '.join(self.finished)})" if self.finished else "")
        rest = f"{len(self.not_trained)} not trained" + (" (run again to train them)" if self.not_trained else "")
        super().__init__(f"{causes}; {kept}, {rest}")


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def train_task(task: MemberTask, observer: TrainingObserver) -> MemberOutput:
    """Train ``task``'s member in this process, from its last resume state if it has one; the body of every runner."""
    from ltsoups.stages.member import member_job, train_member
    from ltsoups.tracking.runs import closed_after
    from ltsoups.training.loop import ObserverGroup

    with working_directory(task.directory):
        context = shared_context(task.config)
        job = member_job(context, task.workspace, task.member)
        if task.tracking is None:
            return train_member(context, task.workspace, job, observer)
        with closed_after(task.tracking.open(task.config, task.workspace)) as hooks:
            output = train_member(context, task.workspace, job, ObserverGroup(observer, hooks.start_member(job)))
            hooks.member_trained(output)
        return output


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    if path == before:
        yield
        return
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}, the directory the run was started in, does not exist on {socket.gethostname()}: "
            "members train where it is shared at the same path (see docs/scaling.md)"
        )
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# One RunContext per process, for the config it trains now: a worker builds the backbone once, however
# many members of that config it trains; the driver lends its own context while its members train here.
_contexts: dict[str, RunContext] = {}


def _key(config: LtSoupsConfig) -> str:
    return config.model_dump_json()


def shared_context(config: LtSoupsConfig) -> RunContext:
    """The context this process trains ``config``'s members with (a new one replaces another config's)."""
    key = _key(config)
    if key not in _contexts:
        from ltsoups.stages.context import RunContext

        previous = next(iter(_contexts.values()), None)  # a comparison's next run shares its loaded dataset
        _contexts.clear()
        _contexts[key] = previous.derive(config) if previous is not None else RunContext(config)
    return _contexts[key]


@contextmanager
def lending(*contexts: RunContext) -> Iterator[None]:
    """Members of these contexts' configs trained in this process during the block use them and their backbones."""
    keys = [_key(context.config) for context in contexts]
    _contexts.clear()
    _contexts.update(zip(keys, contexts, strict=True))
    try:
        yield
    finally:
        for key, context in zip(keys, contexts, strict=True):
            if _contexts.get(key) is context:
                del _contexts[key]
