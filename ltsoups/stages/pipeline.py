"""The whole method in one process: the same stage functions DVC runs one by one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ltsoups.checkpoint import Checkpoint
from ltsoups.plan import PlanFiles
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import Evaluation, evaluate_all
from ltsoups.stages.member import MemberJob, MemberOutput, member_job, train_member
from ltsoups.stages.merge import MergeOutput, merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.stages.retrain_head import HeadOutput, retrain_head
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.loop import ObserverGroup, SilentObserver, TrainingObserver
from ltsoups.workspace import Workspace


class PipelineHooks(Protocol):
    """Told about every stage's result (the tracking layer implements this)."""

    def plan_written(self, files: PlanFiles) -> None: ...

    def theta0_built(self, checkpoint: Checkpoint) -> None: ...

    def start_member(self, job: MemberJob) -> TrainingObserver: ...

    def member_trained(self, output: MemberOutput) -> None: ...

    def soups_merged(self, merged: MergeOutput) -> None: ...

    def start_head(self) -> TrainingObserver: ...

    def head_retrained(self, output: HeadOutput) -> None: ...

    def evaluated(self, evaluation: Evaluation) -> None: ...


class NoHooks:
    def plan_written(self, files: PlanFiles) -> None:
        pass

    def theta0_built(self, checkpoint: Checkpoint) -> None:
        pass

    def start_member(self, job: MemberJob) -> TrainingObserver:
        return SilentObserver()

    def member_trained(self, output: MemberOutput) -> None:
        pass

    def soups_merged(self, merged: MergeOutput) -> None:
        pass

    def start_head(self) -> TrainingObserver:
        return SilentObserver()

    def head_retrained(self, output: HeadOutput) -> None:
        pass

    def evaluated(self, evaluation: Evaluation) -> None:
        pass


def run_pipeline(
    context: RunContext,
    workspace: Workspace,
    observer_for: Callable[[str], TrainingObserver],
    hooks: PipelineHooks | None = None,
) -> Evaluation:
    """prepare, theta0, every member, merge, retrain-head, evaluate; ``observer_for(name)`` follows training."""
    hooks = hooks or NoHooks()
    files = prepare(context, workspace)
    hooks.plan_written(files)
    hooks.theta0_built(build_theta0(context, workspace))
    for planned in files.plan.members:
        job = member_job(context, workspace, planned.member)
        observer = ObserverGroup(observer_for(f"member {job.member}"), hooks.start_member(job))
        hooks.member_trained(train_member(context, workspace, job, observer))
    hooks.soups_merged(merge_members(context, workspace))
    head_observer = ObserverGroup(observer_for("retrain-head"), hooks.start_head())
    hooks.head_retrained(retrain_head(context, workspace, head_observer))
    evaluation = evaluate_all(context, workspace)
    hooks.evaluated(evaluation)
    return evaluation
