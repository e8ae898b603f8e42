"""What a runner runs: one member of a run as a self-contained task that trains the same way in any process."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ltsoups.closing import closed_after
from ltsoups.config import LtSoupsConfig
from ltsoups.contracts import TrainingObserver, Worker
from ltsoups.workspace import Workspace

if TYPE_CHECKING:  # torch loads when a member trains, not when a runner plugin is listed
    from ltsoups.stages.context import RunContext
    from ltsoups.stages.member import MemberJob, MemberOutput


class MemberHooks(Protocol):
    """Logs one member's training in the process that trains it (the tracking layer's PipelineTracker is one)."""

    def start_member(self, job: MemberJob) -> TrainingObserver: ...

    def member_trained(self, output: MemberOutput) -> None: ...

    def close(self, error: BaseException | None = None) -> None: ...


class MemberTracking(Protocol):
    """Sent with each task (so picklable): opens the member's hooks wherever the member trains."""

    def open(self, config: LtSoupsConfig, workspace: Workspace) -> MemberHooks: ...

    def close_left_open(self, workspace: Workspace, members: Sequence[str], status: str, error: str = "") -> None:
        """In the driver: end ``status`` (FINISHED, FAILED, KILLED) the runs of ``members`` no process closed."""


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

    def train(self, observer: TrainingObserver) -> MemberOutput:
        """Train the member in this process, from its last resume state if it has one; the body of every runner."""
        from ltsoups.checkpoint import sidecar_path
        from ltsoups.io.locks import writing
        from ltsoups.stages.member import member_job, train_member
        from ltsoups.training.loop import ObserverGroup

        weights = self.workspace.member(self.member)
        # Locked before anything is written (the member's MLflow run included): a second writer stops here.
        with working_directory(self.directory), writing(weights, sidecar_path(weights)):
            context = shared_context(self.config)
            job = member_job(context, self.workspace, self.member)
            if self.tracking is None:
                return train_member(context, self.workspace, job, observer)
            with closed_after(self.tracking.open(self.config, self.workspace)) as hooks:
                output = train_member(context, self.workspace, job, ObserverGroup(observer, hooks.start_member(job)))
                hooks.member_trained(output)
            return output


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
