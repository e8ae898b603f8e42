"""The whole method from one process: the stages DVC runs one by one; members train where the runner puts them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ltsoups.checkpoint import Checkpoint
from ltsoups.contracts import MemberFollower, Runner, Worker
from ltsoups.data.image_check import ImageCheckProgress
from ltsoups.plan import PlanFiles
from ltsoups.predictions import Predictor
from ltsoups.runners.batch import train_members
from ltsoups.runners.task import MemberTracking, SilentFollower
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import Evaluation, evaluate_all
from ltsoups.stages.evaluate_options import EvaluateOptions
from ltsoups.stages.merge import MergeOutput, merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.stages.retrain_head import HeadOutput, retrain_head
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.cost import CostMeter, TrainingCost, samples_seen
from ltsoups.training.loop import ObserverGroup, SilentObserver, TrainingObserver
from ltsoups.workspace import Workspace


class PipelineHooks(Protocol):
    """Told about every stage's result (the tracking layer implements this)."""

    def plan_written(self, files: PlanFiles) -> None: ...

    def theta0_built(self, checkpoint: Checkpoint) -> None: ...

    def member_tracking(self) -> MemberTracking | None:
        """How the processes that train the members log them (members train wherever the runner puts them)."""

    def stage_started(self, stage: str) -> None:
        """``stage`` (merge, evaluate) begins in this process: the runs it logs when it ends start here."""

    def soups_merged(self, merged: MergeOutput) -> None: ...

    def start_head(self) -> TrainingObserver: ...

    def head_retrained(self, output: HeadOutput) -> None: ...

    def evaluated(self, evaluation: Evaluation) -> None: ...


class NoHooks:
    def stage_started(self, stage: str) -> None:
        pass

    def plan_written(self, files: PlanFiles) -> None:
        pass

    def theta0_built(self, checkpoint: Checkpoint) -> None:
        pass

    def member_tracking(self) -> MemberTracking | None:
        return None

    def soups_merged(self, merged: MergeOutput) -> None:
        pass

    def start_head(self) -> TrainingObserver:
        return SilentObserver()

    def head_retrained(self, output: HeadOutput) -> None:
        pass

    def evaluated(self, evaluation: Evaluation) -> None:
        pass


class ObserverFollower(SilentFollower):
    """Follows each member with ``observer_for(f"member {id}")``, one attempt after another."""

    def __init__(self, observer_for: Callable[[str], TrainingObserver]) -> None:
        self.observer_for = observer_for

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        return self.observer_for(f"member {member}")


def run_pipeline(
    context: RunContext,
    workspace: Workspace,
    observer_for: Callable[[str], TrainingObserver],
    hooks: PipelineHooks | None = None,
    runner: Runner | None = None,
    follower: MemberFollower | None = None,
    images: ImageCheckProgress | None = None,
) -> Evaluation:
    """prepare, theta0, every member, merge, retrain-head, evaluate; ``observer_for(name)`` follows training.

    ``images`` follows prepare's check of every image file.

    Members already trained from their current inputs are kept; the others train through ``runner``
    (default: the config's), followed by ``follower`` (default: through ``observer_for``).
    """
    hooks = hooks or NoHooks()
    files = prepare(context, workspace, images)
    hooks.plan_written(files)
    hooks.theta0_built(build_theta0(context, workspace))
    runner = runner or context.plugin(context.config.runner)
    members = [planned.member for planned in files.plan.members]
    follower = follower or ObserverFollower(observer_for)
    train_members(context, workspace, members, runner, follower, hooks.member_tracking())
    return finish_run(context, workspace, lambda: observer_for("retrain-head"), hooks).evaluation


@dataclass(frozen=True)
class FinishedRun:
    merged: MergeOutput
    head: HeadOutput
    head_cost: TrainingCost | None
    """the classifier re-training's steps, samples, time and memory; None when CR is off"""
    evaluation: Evaluation


def finish_run(
    context: RunContext,
    workspace: Workspace,
    observe_head: Callable[[], TrainingObserver],
    hooks: PipelineHooks | None = None,
    options: EvaluateOptions = EvaluateOptions(),
    predictor: Predictor | None = None,
) -> FinishedRun:
    """merge, retrain-head, evaluate: what follows the members, in `ltsoups run` and in every run of a comparison.

    ``observe_head()`` follows the classifier re-training (called when it starts); ``predictor`` gives each
    evaluated model's logits (default: the run's classifier computes them).
    """
    hooks = hooks or NoHooks()
    hooks.stage_started("merge")
    merged = merge_members(context, workspace)
    hooks.soups_merged(merged)
    meter = CostMeter(context.runtime.device)
    with meter.measure():
        head = retrain_head(context, workspace, ObserverGroup(observe_head(), hooks.start_head()))
    hooks.head_retrained(head)
    head_cost = None
    if head.result is not None:
        size, settings = len(context.splits.train), context.config.retrain_head
        samples = samples_seen(size, settings.optim.batch_size, head.result.steps, settings.sampling.mode)
        head_cost = meter.cost(head.result.steps, samples)
    hooks.stage_started("evaluate")
    evaluation = evaluate_all(context, workspace, options, predictor)
    hooks.evaluated(evaluation)
    return FinishedRun(merged, head, head_cost, evaluation)
