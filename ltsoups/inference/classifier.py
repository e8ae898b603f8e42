"""A classifier rebuilt from its checkpoint and sidecar alone (see ``ltsoups.classifier_spec``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ltsoups.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from ltsoups.classifier_spec import SIDECAR_KEY, ClassifierSpec
from ltsoups.model import CosineHead, LongTailClassifier
from ltsoups.peft.adapters import is_lora_state, unfold_lora
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry
from ltsoups.settings import EvaluationSettings
from ltsoups.training.transforms import Preprocess

HEAD_WEIGHT = "head.weight"


@dataclass(frozen=True)
class CentreView:
    """PIL image -> (C, H, W) input: resized and centre-cropped as the run evaluated, normalised."""

    preprocess: Preprocess

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.preprocess.views(image.convert("RGB"))[0]


@dataclass(frozen=True)
class EvaluationViews:
    """PIL image -> (views, C, H, W): every view the run's evaluation averages logits over (one without ensembling)."""

    preprocess: Preprocess

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.preprocess.views(image.convert("RGB"))


@dataclass(frozen=True)
class LoadedClassifier:
    """A saved member, soup or final model, ready to classify images on the CPU, in eval mode."""

    model: LongTailClassifier
    preprocess: CentreView
    views: EvaluationViews
    class_names: tuple[str, ...]
    spec: ClassifierSpec
    checkpoint: Checkpoint


def classifier_spec(checkpoint: Checkpoint) -> ClassifierSpec:
    """The spec a checkpoint's sidecar records, or an error saying why it cannot be rebuilt."""
    spec = checkpoint.sidecar.classifier
    if spec is None:
        raise CheckpointError(
            f"{checkpoint.path}: its sidecar has no {SIDECAR_KEY!r} record (a {checkpoint.kind or 'checkpoint'} "
            "written by an older ltsoups, or not a classifier): run its stage again to write one"
        )
    return spec


def load_classifier(path: str | Path, registry: PluginRegistry | None = None) -> LoadedClassifier:
    """The classifier saved at ``path`` (a .safetensors checkpoint with its sidecar), verified, never unpickled.

    The backbone comes from the plugin its sidecar names, built without pretrained weights: the checkpoint
    holds them all.
    """
    checkpoint = open_checkpoint(Path(path))
    spec = classifier_spec(checkpoint)
    registry = registry or installed_registry()
    backbone = registry.create(PluginKind.BACKBONE, spec.backbone.name, spec.backbone.params)
    state = checkpoint.load()
    if HEAD_WEIGHT not in state:
        raise CheckpointError(f"{checkpoint.path}: no {HEAD_WEIGHT!r} tensor: not a classifier checkpoint")
    head = CosineHead(torch.zeros_like(state[HEAD_WEIGHT], dtype=torch.float32), spec.head_scale)
    model = LongTailClassifier(backbone.architecture(len(spec.class_names)), head)
    template = model.state_dict()
    try:
        if is_lora_state(template) and not is_lora_state(state):
            state = unfold_lora(state, template)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as err:
        raise CheckpointError(f"{checkpoint.path} does not fit backbone {spec.backbone.name!r}: {err}") from err
    model.requires_grad_(False)
    settings = spec.preprocess
    evaluation = Preprocess(settings.image_size, settings.mean, settings.std, settings.evaluation)
    centre = Preprocess(
        settings.image_size, settings.mean, settings.std, EvaluationSettings(crop=settings.evaluation.crop)
    )
    return LoadedClassifier(
        model.eval(), CentreView(centre), EvaluationViews(evaluation), spec.class_names, spec, checkpoint
    )
