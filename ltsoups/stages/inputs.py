"""What a stage reads from earlier stages, each checked against the config that must have produced it.

A stale input (made from another config, or from other inputs than the ones on disk now) is refused
with the stage to rerun, before anything is computed or written.
"""

from __future__ import annotations

from ltsoups.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from ltsoups.config import LtSoupsConfig
from ltsoups.contracts import FactorGroup
from ltsoups.plan import Plan
from ltsoups.stages.sections import HEAD_SECTIONS, MEMBER_SECTIONS, MERGE_SECTIONS, THETA0_SECTIONS
from ltsoups.workspace import Workspace


def verified_theta0(config: LtSoupsConfig, workspace: Workspace) -> Checkpoint:
    theta0 = open_checkpoint(workspace.theta0, expect_kind="theta0")
    if theta0.sidecar.get("config_sha256") != config.section_hash(*THETA0_SECTIONS):
        raise CheckpointError(f"{theta0.path} was built from another data/backbone/head config; rerun the theta0 stage")
    return theta0


def verified_members(config: LtSoupsConfig, workspace: Workspace, plan: Plan) -> list[FactorGroup]:
    """Member checkpoints grouped by factor (ascending), each checked against the plan's manifest hash."""
    member_sections = config.section_hash(*MEMBER_SECTIONS)
    groups = []
    for factor, entries in plan.factor_groups():
        paths = []
        for entry in entries:
            checkpoint = open_checkpoint(workspace.member(entry.member), expect_kind="member")
            trained_from = str(checkpoint.sidecar.get("manifest_sha256"))
            if trained_from != entry.manifest_sha256:
                raise CheckpointError(
                    f"{checkpoint.path}: trained from manifest {trained_from[:12]}..., "
                    f"but the plan says {entry.manifest_sha256[:12]}... for member {entry.member}"
                )
            if checkpoint.sidecar.get("config_sha256") != member_sections:
                raise CheckpointError(
                    f"{checkpoint.path}: trained with another data/backbone/head/train config "
                    "(with best-val selection: or other evaluation settings); rerun its train-member stage"
                )
            paths.append(checkpoint.path)
        groups.append(FactorGroup(factor, tuple(paths)))
    return groups


def verified_soup(config: LtSoupsConfig, workspace: Workspace) -> Checkpoint:
    soup = open_checkpoint(workspace.soup, expect_kind="soup")
    if soup.sidecar.get("config_sha256") != config.section_hash(*MERGE_SECTIONS):
        searched, searching = "search" in soup.sidecar, config.merge.search.enabled
        hint = ""
        if searched and not searching:
            hint = " (it was chosen by `merge --search`: set merge.search.enabled: true, as its merge did)"
        elif searching and not searched:
            hint = " (merge.search.enabled is true, but it was merged without a search)"
        raise CheckpointError(
            f"{soup.path} was merged with another config (members, plan or merger){hint}; rerun merge"
        )
    return soup


def verified_final(config: LtSoupsConfig, workspace: Workspace, soup: Checkpoint) -> Checkpoint:
    final = open_checkpoint(workspace.final, expect_kind="final")
    if final.sidecar.get("soup_sha256") != soup.sidecar["weights_sha256"]:
        raise CheckpointError(f"{final.path} was made from another soup than {soup.path}; rerun retrain-head")
    if final.sidecar.get("config_sha256") != config.section_hash(*HEAD_SECTIONS):
        raise CheckpointError(f"{final.path} was retrained with another config; rerun retrain-head")
    return final
