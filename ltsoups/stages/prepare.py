"""Stage `prepare`: class counts of the training data, the subsample plan and every manifest."""

from __future__ import annotations

import json

from ltsoups.io.atomic import write_text_atomic
from ltsoups.plan import PlanFiles, write_plan
from ltsoups.registry import PluginKind
from ltsoups.stages.context import RunContext
from ltsoups.workspace import Workspace


def prepare(context: RunContext, workspace: Workspace) -> PlanFiles:
    config = context.config
    train = context.splits.train
    spec = config.plan.sampler
    sampler = context.registry.create(PluginKind.SAMPLER, spec.name, spec.params)
    write_text_atomic(workspace.counts, json.dumps(train.class_counts().tolist()) + "\n")
    return write_plan(
        workspace.plan_dir,
        sampler,
        spec.model_dump(mode="json"),
        train.labels,
        train.num_classes,
        context.splits.name,
        config.seed,
    )
