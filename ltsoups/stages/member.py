"""Stage `train-member`: fine-tune encoder and head on one manifest's subset; keep the EMA weights."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ltsoups.checkpoint import Checkpoint, open_checkpoint, save_checkpoint
from ltsoups.config import Selection
from ltsoups.data.dataset import subset
from ltsoups.evaluation import evaluate
from ltsoups.plan import dataset_fingerprint, manifest_samples, read_manifest
from ltsoups.registry import PluginKind
from ltsoups.stages.context import RunContext
from ltsoups.stages.sections import MEMBER_SECTIONS, THETA0_SECTIONS
from ltsoups.training.batches import AugmentedSamples, derive_seed
from ltsoups.training.loop import TrainingObserver, TrainResult, train
from ltsoups.training.resume import ResumeState
from ltsoups.training.transforms import Preprocess
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class MemberOutput:
    checkpoint: Checkpoint
    manifest: dict
    result: TrainResult


def check_theta0(context: RunContext, workspace: Workspace) -> Checkpoint:
    theta0 = open_checkpoint(workspace.theta0, expect_kind="theta0")
    expected = context.config.section_hash(*THETA0_SECTIONS)
    if theta0.sidecar.get("config_sha256") != expected:
        raise ValueError(f"{theta0.path} was built from another data/backbone/head config; rerun the theta0 stage")
    return theta0


def _manifest_path(workspace: Workspace, member: str) -> Path:
    path = workspace.manifest(member)
    if not path.is_file() and workspace.plan.is_file():
        members = [entry["member"] for entry in json.loads(workspace.plan.read_text())["members"]]
        if member not in members:
            raise ValueError(f"member {member!r} is not in the plan {workspace.plan}; members: {', '.join(members)}")
    return path


def train_member(
    context: RunContext, workspace: Workspace, member: str, observer: TrainingObserver | None = None
) -> MemberOutput:
    config = context.config
    manifest = read_manifest(_manifest_path(workspace, member))
    train_split = context.splits.train
    fingerprint = dataset_fingerprint(context.splits.name, train_split.labels)
    if manifest["dataset"] != fingerprint:
        raise ValueError(f"{workspace.manifest(member)} was drawn from another dataset than the configured one")
    indices = manifest_samples(manifest, workspace.manifest(member), train_split.labels)
    theta0 = check_theta0(context, workspace)
    model, backbone = context.classifier_from(theta0)
    model.train()
    optim = config.train.optim
    preprocess = context.preprocess(backbone, optim)
    member_split = subset(train_split, indices)
    spec = config.train.loss
    loss_fn = context.registry.create(PluginKind.LOSS, spec.name, spec.params).build(member_split.class_counts())
    config_sha = config.section_hash(*MEMBER_SECTIONS)
    seed = derive_seed(config.seed, manifest["factor"], manifest["replica"])
    validate = _validator(context, model, preprocess)
    result = train(
        model,
        AugmentedSamples(member_split, preprocess),
        len(member_split),
        loss_fn,
        optim,
        seed,
        label=f"member {member}",
        resume=ResumeState(
            workspace.member_resume(member),
            f"{config_sha}:{manifest['content_sha256']}:{theta0.sidecar['weights_sha256']}:{seed}",
        ),
        observer=observer,
        validate=validate,
    )
    checkpoint = save_checkpoint(
        workspace.member(member),
        result.state,
        kind="member",
        member=member,
        factor=manifest["factor"],
        replica=manifest["replica"],
        seed=seed,
        subset_size=len(member_split),
        steps=result.steps,
        manifest_sha256=manifest["content_sha256"],
        theta0_sha256=theta0.sidecar["weights_sha256"],
        config_sha256=config_sha,
        best_val_balanced=result.best_val,
    )
    ResumeState(workspace.member_resume(member)).discard()
    return MemberOutput(checkpoint, manifest, result)


def _validator(
    context: RunContext, model: torch.nn.Module, preprocess: Preprocess
) -> Callable[[dict[str, torch.Tensor]], float] | None:
    """Balanced val accuracy of a state dict (on a copy of the model), when best-val selection needs it."""
    if context.config.train.optim.selection is not Selection.BEST_VAL:
        return None
    scratch = copy.deepcopy(model)
    counts = context.train_counts
    thresholds = context.config.data.thresholds

    def score(state: dict[str, torch.Tensor]) -> float:
        scratch.load_state_dict(state)
        return evaluate(scratch, context.splits.val, preprocess, counts, thresholds).balanced

    return score
