"""Built-in runner `ray`: every member a Ray task, on an existing cluster or on a local one started for the run.

Ray is optional (`pip install 'ltsoups[ray]'`); it is imported when a run uses this runner, never
when the plugin is listed or its params are validated.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Generic

from pydantic import Field, model_validator

from ltsoups.contracts import (
    BatchInterrupted,
    MemberFailed,
    MemberFollower,
    MemberTask,
    Output,
    PluginParams,
    Runner,
    Worker,
    describe,
)
from ltsoups.registry import PluginError

if TYPE_CHECKING:
    from types import ModuleType

log = logging.getLogger("ltsoups.runners")
POLL_SECONDS = 0.25
INTERRUPT_GRACE_SECONDS = 60.0
INSTALL_HINT = "pip install 'ltsoups[ray]'"
WORKER_SETUP_HOOK = "ltsoups.plugins.ray_runner.prepare_worker"
"""Run by every worker of a cluster the runner connects to (Ray's ``worker_process_setup_hook``)."""


class RayRunnerParams(PluginParams):
    address: str | None = Field(
        None,
        description="the cluster to use: 'auto' (the one `ray start` runs on this machine, or $RAY_ADDRESS), "
        "'ray://host:10001' (Ray Client) or 'host:6379'; unset: a local cluster started for the run "
        "(or the one this process is already connected to)",
    )
    num_cpus: float = Field(
        1.0, gt=0, description="CPUs reserved per member; its worker trains with that many torch threads"
    )
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs reserved per member; default: 1 when the cluster has GPUs, else 0"
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="how often a member is started again when its worker dies (a killed process, a lost node); "
        "it resumes from its last resume state. Errors raised by the training are not retried",
    )
    cluster_cpus: int | None = Field(
        None, ge=1, description="CPUs of the local cluster started for the run (no address); default: all"
    )

    @model_validator(mode="after")
    def _cluster_cpus_need_a_local_cluster(self) -> RayRunnerParams:
        if self.address is not None and self.cluster_cpus is not None:
            raise ValueError(
                f"cluster_cpus {self.cluster_cpus} sizes the local cluster started without an address; "
                f"with address {self.address!r} the cluster has its own size: drop one of them"
            )
        return self


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as err:
        raise PluginError(f"the ray runner needs Ray, which is not installed here: {INSTALL_HINT}") from err
    return ray


class RayRunner(Runner):
    """Submits every member at once; Ray runs as many as the cluster's free CPUs and GPUs allow."""

    Params = RayRunnerParams
    description = f"every member a Ray task, in parallel on a Ray cluster ({INSTALL_HINT})"
    params: RayRunnerParams

    def __init__(self, params: RayRunnerParams) -> None:
        super().__init__(params)
        self.ray = import_ray()  # fails at once, before any data is loaded, when Ray is missing

    def train(self, tasks: Sequence[MemberTask[Output]], follower: MemberFollower[Output]) -> list[Output]:
        if not tasks:
            return []
        with self._connected():
            return _RayBatch(self.ray, self.params, list(tasks), follower).run()

    def session(self) -> AbstractContextManager[None]:
        return self._connected()

    @contextmanager
    def _connected(self) -> Iterator[None]:
        """This process's connection when it has one (kept), else a connection for the run (closed after)."""
        ray = self.ray
        if ray.is_initialized():
            self._check_connection()
            yield
            return
        setup = {"worker_process_setup_hook": WORKER_SETUP_HOOK}
        marker = None
        if self.params.address is None:
            from ltsoups.runners.local_cluster import record_cluster, stop_abandoned

            stop_abandoned()  # what a killed driver's cluster left running
            started = ray.init(
                address="local",
                num_cpus=self.params.cluster_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                runtime_env=setup,
            )
            marker = record_cluster(started.address_info["session_dir"])
        else:
            ray.init(address=self.params.address, logging_level=logging.WARNING, runtime_env=setup)
        try:
            yield
        finally:
            ray.shutdown()
            if marker is not None:
                marker.unlink(missing_ok=True)

    def _check_connection(self) -> None:
        """This process's connection serves only an ``address`` that names its cluster (or none, or 'auto')."""
        wanted = self.params.address
        if wanted is None or wanted == "auto":
            return
        from ray.util.client import ray as ray_client

        client = ray_client.is_connected()
        current = "a Ray Client server" if client else self.ray.get_runtime_context().gcs_address
        # A Ray Client connection does not say which server it reaches: any serves a ray:// address.
        if client == wanted.startswith("ray://") and (client or _host_port(wanted) == _host_port(current)):
            return
        raise PluginError(
            f"runner.params.address is {wanted!r}, but this process is already connected to the Ray cluster at "
            f"{current}: leave address unset to train there, or name that cluster"
        )


def _host_port(address: str) -> str:
    """``host:port`` with the host as an IP address, so that a name and its address compare equal."""
    host, _, port = address.rpartition(":")
    try:
        return f"{socket.gethostbyname(host)}:{port}"
    except OSError:
        return address


class RayClusterFailed(MemberFailed):
    """Ray itself failed while members trained (a node, its raylet or the driver's relay actor died)."""

    def __init__(self, cause: str, finished: Sequence[str], not_trained: Sequence[str]) -> None:
        super().__init__({}, finished, not_trained)
        kept = f"{len(self.finished)} finished and kept" + (f" ({', '.join(self.finished)})" if self.finished else "")
        self.args = (
            f"the Ray cluster failed while the members trained ({cause}); {kept}, "
            f"{len(self.not_trained)} not trained ({', '.join(self.not_trained)}): run again to train them",
        )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


class _RayBatch(Generic[Output]):
    """One call of RayRunner.train: submit every member, follow them, collect outputs and failures."""

    def __init__(
        self,
        ray: ModuleType,
        params: RayRunnerParams,
        tasks: list[MemberTask[Output]],
        follower: MemberFollower[Output],
    ):
        from ltsoups.runners.relay import EventRelay, Following

        self.ray, self.params, self.tasks, self.follower = ray, params, tasks, follower
        self.relay = ray.remote(num_cpus=0)(EventRelay).remote()
        self.following = Following(follower)
        self.outputs: dict[str, Output] = {}
        self.failures: dict[str, str] = {}
        self.stopped: list[str] = []

    def run(self) -> list[Output]:
        ray = self.ray
        gpus = self.params.num_gpus
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(train_on_worker).options(
            num_cpus=self.params.num_cpus, num_gpus=gpus, max_retries=self.params.max_retries, retry_exceptions=False
        )
        pending = {remote.remote(task, self.relay): task for task in self.tasks}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
                self.following.replay(ray.get(self.relay.drain.remote()))
                for ref in ready:
                    self._collect(ref, pending.pop(ref), pending)
        except KeyboardInterrupt:
            self._stop(pending)
            raise BatchInterrupted(
                self._finished(), [t.name for t in self.tasks if t.name not in self.outputs]
            ) from None
        except ray.exceptions.RayError as err:  # the relay or the cluster died, not a member's training
            not_trained = [task.name for task in self.tasks if task.name not in self.outputs]
            raise RayClusterFailed(_first_line(err), self._finished(), not_trained) from err
        if self.failures:
            raise MemberFailed(self.failures, self._finished(), self.stopped)
        return [self.outputs[task.name] for task in self.tasks]

    def _finished(self) -> list[str]:
        return [task.name for task in self.tasks if task.name in self.outputs]

    def _unfinished(self) -> list[str]:
        return [task.name for task in self.tasks if task.name not in self.outputs]

    def _stop(self, pending: dict[Any, MemberTask[Output]]) -> None:
        """Cancel the members still pending; keep those that finish meanwhile (each saves its resume state at the
        end of its step)."""
        ray = self.ray
        for ref in pending:
            ray.cancel(ref)
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=INTERRUPT_GRACE_SECONDS)
        for ref in done:
            self._collect(ref, pending.pop(ref), pending)

    def _collect(self, ref: Any, task: MemberTask[Output], pending: dict[Any, MemberTask[Output]]) -> None:
        ray = self.ray
        try:
            output = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            self.stopped.append(task.name)
            return
        except ray.exceptions.RayTaskError as err:  # the training raised: the member fails, as it would here
            self._fail(task.name, describe(err.cause), pending)
            return
        except ray.exceptions.RayError as err:  # its worker died more often than max_retries, or cannot start
            self._fail(task.name, _first_line(err), pending)
            return
        self.outputs[task.name] = output
        self.follower.finished(task.name, output)

    def _fail(self, member: str, error: str, pending: dict[Any, MemberTask[Output]]) -> None:
        """Record the failure and cancel the members that have not started: the run fails once the others end."""
        self.failures[member] = error
        self.follower.failed(member, error)
        for ref, task in pending.items():
            if task.name not in self.following.observers:
                self.ray.cancel(ref)


def prepare_worker() -> None:
    """Import the training stack once, in the worker's main thread, before any task's arguments are unpickled.

    Unpickling a member's task imports ltsoups' training modules, and with them torchvision, whose
    first import pulls in torch._dynamo and torch._inductor. Imported there while another thread of the
    worker imported torch's compiler modules, that could leave a module half-initialised for good
    (``partially initialized module 'torch._inductor'``), failing every member the worker ran after.
    """
    import torch._dynamo  # noqa: F401  (torch's compiler stack first: torchvision's import needs it)

    import ltsoups.runners.task
    import ltsoups.tracking  # noqa: F401  (the modules a task's arguments name)


def train_on_worker(task: MemberTask[Output], relay: Any) -> Output:
    """The Ray task of one member: torch threads from the CPUs Ray assigned it, events sent to the driver."""
    import ray
    import torch

    from ltsoups.runners.relay import AttemptStarted, RelayObserver

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    relay.push.remote([AttemptStarted(task.name, Worker.this_process())])
    observer = RelayObserver(relay.push.remote, task.name)
    try:
        return task.train(observer)
    finally:
        observer.flush()
        ray.get(relay.push.remote([]))  # the driver has every event of this member before its result
