"""Stage `retrain-head` (CR): freeze the merged encoder, retrain the head on the full training set.

The head starts from the merged one (the authors' code) or, as Kang et al.'s cRT does, from scratch. With
``trains: class-scale`` (Kang et al.'s LWS) the class vectors stay as merged and a factor per class trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ltsoups.checkpoint import Checkpoint, save_checkpoint
from ltsoups.config import HeadInit, HeadTraining
from ltsoups.model import CosineHead
from ltsoups.settings import Selection
from ltsoups.stages.context import RunContext
from ltsoups.stages.inputs import Link, verified_chain
from ltsoups.stages.sections import head_config_sha256
from ltsoups.stages.validation import ClassifierScorer, HeadScorer
from ltsoups.training.batches import AugmentedSamples, derive_seed
from ltsoups.training.loop import TrainingObserver, TrainResult, train
from ltsoups.training.resume import ResumeState
from ltsoups.workspace import Workspace

CR_SEED = 0xC12
HEAD_INIT_SEED = 0x1A17


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


def retrain_head(context: RunContext, workspace: Workspace, observer: TrainingObserver | None = None) -> HeadOutput:
    config = context.config
    stage = config.retrain_head
    soup = verified_chain(config, workspace, reads=[Link.SOUP], loads=[Link.SOUP]).soup
    assert soup is not None
    config_sha = head_config_sha256(config)
    provenance = {"soup_sha256": soup.sidecar.weights_sha256, "config_sha256": config_sha}
    if not stage.enabled:
        state = soup.load()
        spec = context.classifier_spec(state).sidecar_entry()
        return HeadOutput(
            save_checkpoint(workspace.final, state, kind="final", retrained=False, **provenance, **spec), None
        )
    model = context.classifier_from(soup)
    model.encoder.requires_grad_(False)
    model.encoder.eval()
    if stage.head_init is HeadInit.RANDOM:
        _reinitialise(model.head, derive_seed(config.seed, CR_SEED, HEAD_INIT_SEED))
    if stage.trains is HeadTraining.CLASS_SCALE:
        model.head.learn_class_scale()
    train_split = context.splits.train
    loss_fn = context.plugin(stage.loss).build(train_split.class_counts())
    best_val = stage.selection.mode is Selection.BEST_VAL
    if stage.augment.enabled:
        module = model
        samples: Dataset = AugmentedSamples(train_split, context.preprocess, stage.augment)
        scorer = ClassifierScorer(context, model) if best_val else None
    else:
        module = model.head
        preprocess = context.preprocess
        unaugmented = partial(preprocess.fixed, interpolation=stage.augment.interpolation)
        features = context.features(model.encoder, train_split, unaugmented)
        samples = CachedFeatures(features, torch.as_tensor(train_split.labels))
        scorer = (
            HeadScorer(context, model.head, context.features(model.encoder, context.splits.val, preprocess.views))
            if best_val
            else None
        )
    result = train(
        module,
        samples,
        train_split.labels,
        loss_fn,
        stage,
        context.runtime,
        derive_seed(config.seed, CR_SEED),
        label="retrain-head",
        step_size={"retrain_head.optim.lr": stage.optim.lr, "head.scale": config.head.scale},
        resume=ResumeState(workspace.final_resume, f"{config_sha}:{soup.sidecar.weights_sha256}"),
        observer=observer,
        validate=scorer,
    )
    prefix = "" if stage.augment.enabled else "head."
    model.load_state_dict({**model.state_dict(), **{prefix + k: v for k, v in result.state.items()}})
    state = model.state_dict()
    checkpoint = save_checkpoint(
        workspace.final,
        state,
        kind="final",
        retrained=True,
        head_init=stage.head_init.value,
        steps=result.steps,
        best_val_balanced=result.best_val,
        **provenance,
        **context.classifier_spec(state).sidecar_entry(),
    )
    ResumeState(workspace.final_resume).discard()
    return HeadOutput(checkpoint, result)


def _reinitialise(head: CosineHead, seed: int) -> None:
    """Random class vectors: directions uniform on the sphere (the cosine head's only freedom), of unit norm.

    The norm matters though the head normalises: an optimizer step moves each entry by about the learning
    rate, so rows of norm sqrt(dim) (N(0, 1) entries) would turn sqrt(dim) times slower than the unit rows of
    the prompt-initialised head CR's learning rate is set for (and of the order of a fresh nn.Linear's, which
    Kang et al.'s cRT re-creates).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(F.normalize(torch.randn(head.weight.shape, generator=generator), dim=-1))
