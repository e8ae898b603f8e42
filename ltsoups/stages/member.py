"""Stage `train-member`: fine-tune encoder and head on one manifest's subset; keep the EMA weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltsoups.checkpoint import Checkpoint, save_checkpoint
from ltsoups.data.dataset import subset
from ltsoups.evaluation import Scores, evaluate
from ltsoups.plan import DatasetFingerprint, Manifest, PlanError
from ltsoups.settings import Selection
from ltsoups.stages.context import RunContext
from ltsoups.stages.inputs import Link, MemberInputs, verified_chain
from ltsoups.stages.validation import ClassifierScorer
from ltsoups.training.batches import AugmentedSamples
from ltsoups.training.cost import CostMeter, TrainingCost, samples_seen
from ltsoups.training.loop import TrainingObserver, TrainSummary, train
from ltsoups.training.resume import ResumeState
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class MemberJob:
    """One member, ready to train: its checked manifest, the theta_0 it starts from and what it is trained from."""

    member: str
    manifest: Manifest
    manifest_path: Path
    theta0: Checkpoint
    inputs: MemberInputs

    @property
    def seed(self) -> int:
        """Seeds the member's data order, augmentation and dropout: a function of (run seed, factor, replica),
        so a member's training does not depend on which other members the plan has."""
        return self.inputs.seed

    @property
    def provenance(self) -> dict[str, str | int]:
        """What the member's checkpoint records it was trained from (`MemberInputs.problem` compares them)."""
        inputs = self.inputs
        return {
            "seed": inputs.seed,
            "manifest_sha256": inputs.manifest_sha256,
            "theta0_sha256": inputs.theta0_sha256,
            "config_sha256": inputs.config_sha256,
        }

    @property
    def resume_fingerprint(self) -> str:
        """What a resume state must have been written for: this config, manifest, theta_0 and seed."""
        inputs = self.inputs
        return f"{inputs.config_sha256}:{inputs.manifest_sha256}:{inputs.theta0_sha256}:{inputs.seed}"


@dataclass(frozen=True)
class MemberOutput:
    """A trained member: its job, its checkpoint on disk and what the training did (the weights are on disk only)."""

    job: MemberJob
    checkpoint: Checkpoint
    result: TrainSummary
    cost: TrainingCost
    """measured in the process that trained it: wall time and peak memory of the whole stage"""
    val: Scores
    """the member's validation accuracy, for comparing members (selection and merging never read it)"""


def member_job(context: RunContext, workspace: Workspace, member: str) -> MemberJob:
    """Read and check everything ``member`` trains from (plan, manifest, theta_0), before any training starts."""
    config = context.config
    plan = verified_chain(config, workspace, reads=[Link.PLAN]).plan
    assert plan is not None
    planned = plan.member(member, workspace.plan)
    path = workspace.manifest(member)
    manifest = Manifest.read(path)
    if manifest.content_sha256 != planned.manifest_sha256:
        raise PlanError(f"{path} is not the manifest {workspace.plan} lists for {member}; rerun `ltsoups prepare`")
    if manifest.dataset != DatasetFingerprint.of(context.splits.name, context.splits.train.labels):
        raise PlanError(f"{path} was drawn from another dataset than the configured one")
    theta0 = verified_chain(config, workspace, reads=[Link.THETA0], loads=[Link.THETA0]).theta0
    assert theta0 is not None
    inputs = MemberInputs.of(
        config, manifest.content_sha256, theta0.sidecar.weights_sha256, manifest.factor, manifest.replica
    )
    return MemberJob(member=member, manifest=manifest, manifest_path=path, theta0=theta0, inputs=inputs)


def train_member(
    context: RunContext, workspace: Workspace, job: MemberJob, observer: TrainingObserver | None = None
) -> MemberOutput:
    meter = CostMeter(context.runtime.device)
    with meter.measure():
        checkpoint, result = _train(context, workspace, job, observer)
    train = context.config.train
    samples = samples_seen(job.manifest.size, train.optim.batch_size, result.steps, train.sampling.mode)
    model = context.classifier_from(checkpoint)
    val = evaluate(model, context.evaluation_inputs("val"), context.train_counts, context.config.data.thresholds)
    return MemberOutput(job, checkpoint, result, meter.cost(result.steps, samples), val)


def _train(
    context: RunContext, workspace: Workspace, job: MemberJob, observer: TrainingObserver | None
) -> tuple[Checkpoint, TrainSummary]:
    config = context.config
    train_split = context.splits.train
    member_split = subset(train_split, job.manifest.samples(train_split.labels, job.manifest_path))
    model = context.classifier_from(job.theta0)
    model.train()
    loss_fn = context.plugin(config.train.loss).build(member_split.class_counts())
    resume_path = workspace.member_resume(job.member)
    result = train(
        model,
        AugmentedSamples(member_split, context.preprocess, config.train.augment),
        member_split.labels,
        loss_fn,
        config.train,
        context.runtime,
        job.seed,
        label=f"member {job.member}",
        step_size={"train.optim.lr": config.train.optim.lr, "head.scale": config.head.scale},
        resume=ResumeState(resume_path, job.resume_fingerprint),
        observer=observer,
        validate=ClassifierScorer(context, model) if config.train.selection.mode is Selection.BEST_VAL else None,
    )
    manifest = job.manifest
    checkpoint = save_checkpoint(
        workspace.member(job.member),
        result.state,
        kind="member",
        member=job.member,
        factor=manifest.factor,
        replica=manifest.replica,
        subset_size=len(member_split),
        steps=result.steps,
        best_val_balanced=result.best_val,
        **job.provenance,
        **context.classifier_spec(result.state).sidecar_entry(),
    )
    ResumeState(resume_path).discard()
    return checkpoint, result.summary()
