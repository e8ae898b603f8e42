"""Stage `prepare`: class counts of the training data, the subsample plan and every manifest."""

from __future__ import annotations

from ltsoups.data.counts_file import write_counts
from ltsoups.plan import PlanFiles, write_plan
from ltsoups.stages.context import RunContext
from ltsoups.workspace import Workspace


def prepare(context: RunContext, workspace: Workspace) -> PlanFiles:
    config = context.config
    train = context.splits.train
    spec = config.plan.sampler
    write_counts(workspace.counts, train.class_counts())
    return write_plan(
        workspace,
        context.plugin(spec),
        spec.model_dump(mode="json", by_alias=True),
        train.labels,
        train.num_classes,
        context.splits.name,
        config.seed,
    )
