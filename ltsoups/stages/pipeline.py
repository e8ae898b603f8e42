"""The whole method in one process: the same stage functions DVC runs one by one."""

from __future__ import annotations

import json
from collections.abc import Callable

from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import ResultRow, evaluate_all
from ltsoups.stages.member import train_member
from ltsoups.stages.merge import merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.stages.retrain_head import retrain_head
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.loop import TrainingObserver
from ltsoups.workspace import Workspace


def run_pipeline(
    context: RunContext, workspace: Workspace, observer_for: Callable[[str], TrainingObserver]
) -> list[ResultRow]:
    """prepare, theta0, every member, merge, retrain-head, evaluate; ``observer_for(name)`` follows training."""
    prepare(context, workspace)
    build_theta0(context, workspace)
    members = [entry["member"] for entry in json.loads(workspace.plan.read_text())["members"]]
    for member in members:
        train_member(context, workspace, member, observer_for(f"member {member}"))
    merge_members(context, workspace)
    retrain_head(context, workspace, observer_for("retrain-head"))
    return evaluate_all(context, workspace)
