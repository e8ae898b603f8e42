"""Training the members a comparison needs: the one call a parallel runner replaces.

A comparison first collects every member that no store entry holds yet (each once, however many
methods and seeds use it), then trains them all with ``train_members``. Which members are shared, and
how they reach each workdir, is decided apart from this call (``ltsoups.compare.run``), so training
them elsewhere (the runners of issue 10) changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ltsoups.stages.context import RunContext
from ltsoups.stages.member import member_job, train_member
from ltsoups.training.cost import CostMeter, TrainingCost, samples_seen
from ltsoups.training.loop import TrainingObserver
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class MemberTask:
    """Train ``member`` of the plan in ``workspace`` (its manifest and theta_0 are there), with ``context``."""

    context: RunContext
    workspace: Workspace
    member: str
    label: str
    """names the training in progress displays"""


def train_members(
    tasks: Sequence[MemberTask],
    observer_for: Callable[[str], TrainingObserver],
    trained: Callable[[MemberTask, TrainingCost], None],
) -> None:
    """Train every task's member into its workspace, one after another in this process.

    ``trained(task, cost)`` is called as each member is done, so that an interrupted comparison keeps
    the members it finished.
    """
    for task in tasks:
        job = member_job(task.context, task.workspace, task.member)
        meter = CostMeter(task.context.runtime.device)
        with meter.measure():
            output = train_member(task.context, task.workspace, job, observer_for(task.label))
        batch = task.context.config.train.optim.batch_size
        trained(task, meter.cost(output.result.steps, samples_seen(job.manifest.size, batch, output.result.steps)))
