"""Stage `retrain-head` (CR): freeze the merged encoder, retrain the head on the full training set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ltsoups.checkpoint import Checkpoint, CheckpointError, open_checkpoint, save_checkpoint
from ltsoups.registry import PluginKind
from ltsoups.stages.context import RunContext
from ltsoups.stages.sections import HEAD_SECTIONS, MERGE_SECTIONS
from ltsoups.training.batches import AugmentedSamples, EvaluationSamples, derive_seed
from ltsoups.training.loop import TrainingObserver, TrainResult, train
from ltsoups.training.resume import ResumeState
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class HeadOutput:
    checkpoint: Checkpoint
    result: TrainResult | None


class CachedFeatures(Dataset):
    """Frozen-encoder features computed once; indexed like AugmentedSamples (the seed is unused)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        return self.features[key[0]], int(self.labels[key[0]])


@torch.no_grad()
def _features(encoder: torch.nn.Module, samples: EvaluationSamples) -> torch.Tensor:
    loader = torch.utils.data.DataLoader(samples, batch_size=256)
    return torch.cat([encoder(images) for images, _ in loader])


def retrain_head(context: RunContext, workspace: Workspace, observer: TrainingObserver | None = None) -> HeadOutput:
    config = context.config
    stage = config.retrain_head
    soup = open_checkpoint(workspace.soup, expect_kind="soup")
    if soup.sidecar.get("config_sha256") != config.section_hash(*MERGE_SECTIONS):
        raise CheckpointError(f"{soup.path} was merged with another config (members, plan or merger); rerun merge")
    config_sha = config.section_hash(*HEAD_SECTIONS)
    provenance = {"soup_sha256": soup.sidecar["weights_sha256"], "config_sha256": config_sha}
    if not stage.enabled:
        return HeadOutput(
            save_checkpoint(workspace.final, soup.load(), kind="final", retrained=False, **provenance), None
        )
    model, backbone = context.classifier_from(soup)
    model.encoder.requires_grad_(False)
    model.encoder.eval()
    preprocess = context.preprocess(backbone, stage.optim)
    train_split = context.splits.train
    spec = stage.loss
    loss_fn = context.registry.create(PluginKind.LOSS, spec.name, spec.params).build(train_split.class_counts())
    if stage.augment:
        module, samples = model, AugmentedSamples(train_split, preprocess)
    else:
        features = _features(model.encoder, EvaluationSamples(train_split, preprocess))
        module, samples = model.head, CachedFeatures(features, torch.as_tensor(train_split.labels))
    result = train(
        module,
        samples,
        len(train_split),
        loss_fn,
        stage.optim,
        derive_seed(config.seed, 0xC12),
        label="retrain-head",
        resume=ResumeState(workspace.final_resume, f"{config_sha}:{soup.sidecar['weights_sha256']}"),
        observer=observer,
    )
    prefix = "" if stage.augment else "head."
    model.load_state_dict({**model.state_dict(), **{prefix + k: v for k, v in result.state.items()}})
    checkpoint = save_checkpoint(
        workspace.final,
        model.state_dict(),
        kind="final",
        retrained=True,
        steps=result.steps,
        **provenance,
    )
    ResumeState(workspace.final_resume).discard()
    return HeadOutput(checkpoint, result)
