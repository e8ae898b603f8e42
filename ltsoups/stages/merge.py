"""Stage `merge`: members -> soup, streaming, plus the running soup after each factor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ltsoups.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from ltsoups.contracts import FactorGroup, Merger
from ltsoups.evaluation import Scores, evaluate
from ltsoups.io.atomic import write_json_atomic
from ltsoups.merging import check_layouts, merge_weighted
from ltsoups.registry import PluginKind
from ltsoups.stages.context import RunContext
from ltsoups.stages.member import check_theta0
from ltsoups.stages.sections import MEMBER_SECTIONS, MERGE_SECTIONS
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class RunningSoup:
    factor: int
    checkpoint: Checkpoint
    val: Scores


def verified_groups(context: RunContext, workspace: Workspace) -> list[FactorGroup]:
    """Member checkpoints grouped by factor, each checked against the plan's manifest hash."""
    plan = json.loads(workspace.plan.read_text())
    member_sections = context.config.section_hash(*MEMBER_SECTIONS)
    by_factor: dict[int, list[Path]] = {}
    for entry in plan["members"]:
        checkpoint = open_checkpoint(workspace.member(entry["member"]), expect_kind="member")
        if checkpoint.sidecar.get("manifest_sha256") != entry["manifest_sha256"]:
            raise CheckpointError(
                f"{checkpoint.path}: trained from manifest {str(checkpoint.sidecar.get('manifest_sha256'))[:12]}..., "
                f"but the plan says {entry['manifest_sha256'][:12]}... for member {entry['member']}"
            )
        if checkpoint.sidecar.get("config_sha256") != member_sections:
            raise CheckpointError(f"{checkpoint.path}: trained with another data/backbone/head/train config")
        by_factor.setdefault(entry["factor"], []).append(checkpoint.path)
    return [FactorGroup(factor, tuple(paths)) for factor, paths in sorted(by_factor.items())]


def merge_members(context: RunContext, workspace: Workspace) -> list[RunningSoup]:
    """The final soup and one running soup per factor prefix, each scored on the validation split."""
    config = context.config
    theta0 = check_theta0(context, workspace)
    groups = verified_groups(context, workspace)
    # Every input must fit before the first running soup is written: a failed merge writes nothing.
    check_layouts([theta0.path, *(path for group in groups for path in group.members)])
    spec = config.merge.merger
    merger: Merger = context.registry.create(PluginKind.MERGER, spec.name, spec.params)
    provenance = {"config_sha256": config.section_hash(*MERGE_SECTIONS), "merger": spec.model_dump(mode="json")}
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
    model, backbone = context.classifier_from(checkpoint)
    preprocess = context.preprocess(backbone, context.config.train.optim)
    return evaluate(model, context.splits.val, preprocess, context.train_counts, context.config.data.thresholds)
