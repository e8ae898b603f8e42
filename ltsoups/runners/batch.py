"""Train a run's members through a runner, leaving out those already trained from their current inputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ltsoups.contracts import BatchInterrupted, MemberFailed, MemberFollower, Runner
from ltsoups.plan import Plan
from ltsoups.runners.task import MemberTask, MemberTracking, SilentFollower, lending
from ltsoups.stages.context import RunContext
from ltsoups.stages.member import MemberJob, MemberOutput, member_job
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class TrainedMembers:
    trained: list[MemberOutput]
    up_to_date: list[str]
    """Members whose checkpoint was already trained from the same manifest, config, theta_0 and seed."""


def is_trained(workspace: Workspace, job: MemberJob) -> bool:
    return job.inputs.trained_at(workspace.member(job.member))


def member_tasks(
    context: RunContext,
    workspace: Workspace,
    member_ids: Sequence[str] | None = None,
    tracking: MemberTracking | None = None,
) -> tuple[list[MemberTask], list[str]]:
    """The tasks of the members to train, and the ids of those already trained; every manifest is checked first.

    ``member_ids`` None: every member of the plan.
    """
    ids = list(dict.fromkeys(member_ids)) if member_ids else [m.member for m in Plan.read(workspace.plan).members]
    jobs = [member_job(context, workspace, member) for member in ids]
    here = Path.cwd()
    tasks = [
        MemberTask(context.config, workspace, job.member, here, tracking)
        for job in jobs
        if not is_trained(workspace, job)
    ]
    pending = {task.member for task in tasks}
    return tasks, [job.member for job in jobs if job.member not in pending]


def train_members(
    context: RunContext,
    workspace: Workspace,
    member_ids: Sequence[str] | None,
    runner: Runner,
    follower: MemberFollower | None = None,
    tracking: MemberTracking | None = None,
) -> TrainedMembers:
    """Train every member of ``member_ids`` (None: of the plan) not yet trained from its current inputs.

    Args:
        tracking: how the process that trains a member logs it (e.g. under the pipeline's parent run).
    """
    follower = follower or SilentFollower()
    tasks, up_to_date = member_tasks(context, workspace, member_ids, tracking)
    follower.planned([task.name for task in tasks], up_to_date)
    if tracking is not None:  # trained, yet their runs stayed open (the store was away when they ended)
        tracking.close_left_open(workspace, up_to_date, "FINISHED")
    if not tasks:
        return TrainedMembers([], up_to_date)
    with lending(context), _runs_closed(workspace, tasks, tracking), _saved_counted(context, workspace, tasks):
        return TrainedMembers(runner.train(tasks, follower), up_to_date)


@contextmanager
def _saved_counted(context: RunContext, workspace: Workspace, tasks: Sequence[MemberTask]) -> Iterator[None]:
    """Ctrl-C between a member's save and its return (its tracking, its resume state's removal) leaves it trained:
    it counts as finished."""
    try:
        yield
    except BatchInterrupted as stopped:
        member_of = {task.name: task.member for task in tasks}
        saved = [
            name
            for name in stopped.unfinished
            if is_trained(workspace, member_job(context, workspace, member_of[name]))
        ]
        if not saved:
            raise
        finished = [task.name for task in tasks if task.name in stopped.finished or task.name in saved]
        raise BatchInterrupted(finished, [name for name in stopped.unfinished if name not in saved]) from stopped


@contextmanager
def _runs_closed(workspace: Workspace, tasks: Sequence[MemberTask], tracking: MemberTracking | None) -> Iterator[None]:
    """No member run left RUNNING by the batch: those a dead worker or an absent store left open are closed here,
    FINISHED, FAILED with the member's error, or KILLED after Ctrl-C."""
    if tracking is None:
        yield
        return
    member_of = {task.name: task.member for task in tasks}
    try:
        yield
    except MemberFailed as failed:
        for name, error in failed.failures.items():
            tracking.close_left_open(workspace, [member_of[name]], "FAILED", error)
        tracking.close_left_open(workspace, [member_of[name] for name in failed.not_trained], "KILLED")
        tracking.close_left_open(workspace, [member_of[name] for name in failed.finished], "FINISHED")
        raise
    except BatchInterrupted as stopped:
        tracking.close_left_open(workspace, [member_of[name] for name in stopped.unfinished], "KILLED")
        tracking.close_left_open(workspace, [member_of[name] for name in stopped.finished], "FINISHED")
        raise
    tracking.close_left_open(workspace, list(member_of.values()), "FINISHED")
