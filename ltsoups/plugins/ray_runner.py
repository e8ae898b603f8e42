"""Built-in runner `ray`: every member a Ray task, on an existing cluster or on a local one started for the run.

Ray is optional (`pip install 'ltsoups[ray]'`); it is imported when a run uses this runner, never
when the plugin is listed or its params are validated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic

from pydantic import Field, model_validator

from ltsoups.contracts import MemberFailed, MemberFollower, MemberTask, Output, PluginParams, Runner, Worker, describe
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

    @contextmanager
    def _connected(self) -> Iterator[None]:
        """This process's connection when it has one (kept), else a connection for the run (closed after)."""
        ray = self.ray
        if ray.is_initialized():
            yield
            return
        setup = {"worker_process_setup_hook": WORKER_SETUP_HOOK}
        if self.params.address is None:
            ray.init(
                address="local",
                num_cpus=self.params.cluster_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                runtime_env=setup,
            )
        else:
            ray.init(address=self.params.address, logging_level=logging.WARNING, runtime_env=setup)
        try:
            yield
        finally:
            ray.shutdown()


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
            for ref in pending:
                ray.cancel(ref)  # a running member saves its resume state at the end of its step
            ray.wait(list(pending), num_returns=len(pending), timeout=INTERRUPT_GRACE_SECONDS)
            raise KeyboardInterrupt(
                f"stopped with {len(pending)} member(s) unfinished; run again to resume them"
            ) from None
        if self.failures:
            finished = [task.name for task in self.tasks if task.name in self.outputs]
            raise MemberFailed(self.failures, finished, self.stopped)
        return [self.outputs[task.name] for task in self.tasks]

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
            self._fail(task.name, str(err).strip().splitlines()[0], pending)
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
