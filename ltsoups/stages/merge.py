"""Stage `merge`: members -> soup, streaming, plus the running soup after each factor."""

from __future__ import annotations

from dataclasses import dataclass

from ltsoups.checkpoint import Checkpoint
from ltsoups.contracts import Merger
from ltsoups.evaluation import Scores, evaluate
from ltsoups.io.atomic import write_json_atomic
from ltsoups.merging import check_layouts, merge_weighted
from ltsoups.plan import Plan
from ltsoups.stages.context import RunContext
from ltsoups.stages.inputs import verified_members, verified_theta0
from ltsoups.stages.sections import MERGE_SECTIONS
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class RunningSoup:
    factor: int
    checkpoint: Checkpoint
    val: Scores


def merge_members(context: RunContext, workspace: Workspace) -> list[RunningSoup]:
    """The final soup and one running soup per factor prefix, each scored on the validation split."""
    config = context.config
    theta0 = verified_theta0(config, workspace)
    groups = verified_members(config, workspace, Plan.read(workspace.plan))
    # Every input must fit before the first running soup is written: a failed merge writes nothing.
    check_layouts([theta0.path, *(path for group in groups for path in group.members)])
    spec = config.merge.merger
    merger: Merger = context.plugin(spec)
    provenance = {
        "config_sha256": config.section_hash(*MERGE_SECTIONS),
        "merger": spec.model_dump(mode="json", by_alias=True),
    }
    running = []
    if not groups:  # a plan without members (zero-shot sampler): the soup is theta_0
        checkpoint = merge_weighted([(theta0.path, 1.0)], workspace.soup, upto_factor=None, **provenance)
        running.append(RunningSoup(0, checkpoint, _val_scores(context, checkpoint)))
    for k in range(1, len(groups) + 1):
        coefficients = merger.coefficients(theta0.path, groups[:k])
        target = workspace.soup if k == len(groups) else workspace.running_soup(groups[k - 1].factor)
        checkpoint = merge_weighted(coefficients, target, upto_factor=groups[k - 1].factor, **provenance)
        running.append(RunningSoup(groups[k - 1].factor, checkpoint, _val_scores(context, checkpoint)))
    write_json_atomic(workspace.soup_metrics, {f"f{r.factor}": r.val.headline() for r in running})
    return running


def _val_scores(context: RunContext, checkpoint: Checkpoint) -> Scores:
    model = context.classifier_from(checkpoint)
    splits, thresholds = context.splits, context.config.data.thresholds
    return evaluate(model, splits.val, context.preprocess, context.runtime, context.train_counts, thresholds)
