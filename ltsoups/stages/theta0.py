"""Stage `theta0`: the zero-shot weights every member starts from and every merge anchors to."""

from __future__ import annotations

from ltsoups.checkpoint import Checkpoint, save_checkpoint
from ltsoups.stages.context import RunContext
from ltsoups.stages.sections import theta0_config_sha256
from ltsoups.workspace import Workspace


def build_theta0(context: RunContext, workspace: Workspace) -> Checkpoint:
    state = context.zero_shot_classifier().state_dict()
    config = context.config
    return save_checkpoint(
        workspace.theta0,
        state,
        kind="theta0",
        config_sha256=theta0_config_sha256(config),
        backbone=config.backbone.model_dump(mode="json", by_alias=True),
        class_names=list(context.splits.train.class_names),
        head_scale=config.head.scale,
        **context.classifier_spec(state).sidecar_entry(),
    )
