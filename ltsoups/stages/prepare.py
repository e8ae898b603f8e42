"""Stage `prepare`: class counts of the training data, the subsample plan and every manifest."""

from __future__ import annotations

from ltsoups.data.counts_file import write_counts
from ltsoups.data.image_check import ImageCheckProgress, check_images
from ltsoups.plan import PlanFiles, write_plan
from ltsoups.stages.context import RunContext
from ltsoups.workspace import Workspace


def prepare(context: RunContext, workspace: Workspace, images: ImageCheckProgress | None = None) -> PlanFiles:
    """Every image file decoded once (all unreadable ones named, nothing written), then counts, plan, manifests."""
    config = context.config
    check_images(context.splits, images)
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
