"""The whole method in one process: the same stage functions DVC runs one by one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from ltsoups.checkpoint import Checkpoint
from ltsoups.plan import PlanFiles
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import ResultRow, evaluate_all
from ltsoups.stages.member import MemberOutput, train_member
from ltsoups.stages.merge import RunningSoup, merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.stages.retrain_head import HeadOutput, retrain_head
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.loop import ObserverGroup, SilentObserver, TrainingObserver
from ltsoups.workspace import Workspace


class PipelineHooks(Protocol):
    """Told about every stage's result (the tracking layer implements this)."""

    def plan_written(self, files: PlanFiles) -> None: ...

    def theta0_built(self, checkpoint: Checkpoint) -> None: ...

    def start_member(self, member: str) -> TrainingObserver: ...

    def member_trained(self, output: MemberOutput) -> None: ...

    def soups_merged(self, running: list[RunningSoup]) -> None: ...

    def start_head(self) -> TrainingObserver: ...

    def head_retrained(self, output: HeadOutput) -> None: ...

    def evaluated(self, rows: list[ResultRow]) -> None: ...


class NoHooks:
    def plan_written(self, files: PlanFiles) -> None:
        pass

    def theta0_built(self, checkpoint: Checkpoint) -> None:
        pass

    def start_member(self, member: str) -> TrainingObserver:
        return SilentObserver()

    def member_trained(self, output: MemberOutput) -> None:
        pass

    def soups_merged(self, running: list[RunningSoup]) -> None:
        pass

    def start_head(self) -> TrainingObserver:
        return SilentObserver()

    def head_retrained(self, output: HeadOutput) -> None:
        pass

    def evaluated(self, rows: list[ResultRow]) -> None:
        pass


def run_pipeline(
    context: RunContext,
    workspace: Workspace,
    observer_for: Callable[[str], TrainingObserver],
    hooks: PipelineHooks | None = None,
) -> list[ResultRow]:
    """prepare, theta0, every member, merge, retrain-head, evaluate; ``observer_for(name)`` follows training."""
    hooks = hooks or NoHooks()
    hooks.plan_written(prepare(context, workspace))
    hooks.theta0_built(build_theta0(context, workspace))
    for entry in json.loads(workspace.plan.read_text())["members"]:
        member = entry["member"]
        observer = ObserverGroup(observer_for(f"member {member}"), hooks.start_member(member))
        hooks.member_trained(train_member(context, workspace, member, observer))
    hooks.soups_merged(merge_members(context, workspace))
    head_observer = ObserverGroup(observer_for("retrain-head"), hooks.start_head())
    hooks.head_retrained(retrain_head(context, workspace, head_observer))
    rows = evaluate_all(context, workspace)
    hooks.evaluated(rows)
    return rows
