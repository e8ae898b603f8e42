"""Shared loading for stages: the dataset, the backbone and classifiers rebuilt from checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ltsoups.checkpoint import Checkpoint, CheckpointError
from ltsoups.config import LtSoupsConfig, OptimConfig
from ltsoups.contracts import Backbone, Dataset, LoadedBackbone
from ltsoups.data.dataset import DatasetSplits, LabelledImages
from ltsoups.model import CosineHead, LongTailClassifier, prompt_embeddings
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry
from ltsoups.training.batches import EvaluationSamples
from ltsoups.training.transforms import Preprocess


@dataclass
class RunContext:
    """Lazily loaded pieces of one configured run."""

    config: LtSoupsConfig
    registry: PluginRegistry = field(default_factory=installed_registry)

    @cached_property
    def dataset(self) -> Dataset:
        spec = self.config.data.dataset
        return self.registry.create(PluginKind.DATASET, spec.name, spec.params)

    @cached_property
    def splits(self) -> DatasetSplits:
        return self.dataset.load()

    @cached_property
    def train_counts(self) -> np.ndarray:
        return self.splits.train.class_counts()

    def backbone(self) -> LoadedBackbone:
        spec = self.config.backbone
        plugin: Backbone = self.registry.create(PluginKind.BACKBONE, spec.name, spec.params)
        return plugin.load(num_classes=self.splits.train.num_classes)

    def preprocess(self, backbone: LoadedBackbone, optim: OptimConfig) -> Preprocess:
        return Preprocess(backbone.image_size, backbone.mean, backbone.std, optim.crop_scale, optim.hflip)

    def zero_shot_classifier(self) -> tuple[LongTailClassifier, LoadedBackbone]:
        """theta_0: the pretrained encoder and a head from class prompts (class means without text)."""
        backbone = self.backbone()
        names = list(self.splits.train.class_names)
        if backbone.text_embedder is not None:
            weight = prompt_embeddings(backbone.text_embedder, names, self.config.head.templates)
        else:
            preprocess = self.preprocess(backbone, self.config.train.optim)
            weight = class_mean_features(backbone.image_encoder, backbone.feature_dim, self.splits.train, preprocess)
        head = CosineHead(weight, self.config.head.scale)
        return LongTailClassifier(backbone.image_encoder, head), backbone

    def classifier_from(self, checkpoint: Checkpoint) -> tuple[LongTailClassifier, LoadedBackbone]:
        """The backbone architecture with weights from a member, soup or final checkpoint."""
        backbone = self.backbone()
        num_classes = self.splits.train.num_classes
        head = CosineHead(torch.zeros(num_classes, backbone.feature_dim), self.config.head.scale)
        model = LongTailClassifier(backbone.image_encoder, head)
        try:
            model.load_state_dict(checkpoint.load(), strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{checkpoint.path} does not fit the configured backbone: {err}") from err
        return model, backbone


@torch.no_grad()
def class_mean_features(
    encoder: nn.Module, feature_dim: int, split: LabelledImages, preprocess: Preprocess
) -> torch.Tensor:
    """Per class: the mean of its normalised image features (head init for backbones without text)."""
    encoder.eval()
    sums = torch.zeros(split.num_classes, feature_dim)
    for images, labels in DataLoader(EvaluationSamples(split, preprocess), batch_size=256):
        sums.index_add_(0, labels, torch.nn.functional.normalize(encoder(images).float(), dim=-1))
    return torch.nn.functional.normalize(sums / torch.as_tensor(split.class_counts()).clamp_min(1)[:, None], dim=-1)
