"""Shared loading for stages: the plugins, the dataset, and one classifier per process on the run's device."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from ltsoups.checkpoint import Checkpoint, CheckpointError
from ltsoups.config import LtSoupsConfig
from ltsoups.contracts import Dataset, LoadedBackbone
from ltsoups.data.dataset import DatasetSplits, LabelledImages
from ltsoups.model import CosineHead, LongTailClassifier, prompt_embeddings
from ltsoups.registry import PluginChoice, PluginRegistry, installed_registry
from ltsoups.runtime import Runtime
from ltsoups.training.batches import EvaluationSamples
from ltsoups.training.transforms import Preprocess

FEATURE_BATCH_SIZE = 256


@dataclass
class RunContext:
    """Lazily loaded pieces of one configured run.

    The backbone architecture is built once: every checkpoint a stage scores or trains is loaded
    into the same classifier, which lives on the run's device.
    """

    config: LtSoupsConfig
    registry: PluginRegistry = field(default_factory=installed_registry)
    _checkpoint_loaded: bool = field(default=False, init=False)

    def plugin(self, choice: PluginChoice) -> Any:
        """The plugin a config section names, with the params the config validated."""
        return self.registry.instantiate(choice)

    @cached_property
    def runtime(self) -> Runtime:
        return Runtime.of(self.config.runtime)

    @cached_property
    def dataset(self) -> Dataset:
        return self.plugin(self.config.data.dataset)

    @cached_property
    def splits(self) -> DatasetSplits:
        return self.dataset.load()

    @cached_property
    def train_counts(self) -> np.ndarray:
        return self.splits.train.class_counts()

    @cached_property
    def backbone(self) -> LoadedBackbone:
        return self.plugin(self.config.backbone).load(num_classes=self.splits.train.num_classes)

    @cached_property
    def preprocess(self) -> Preprocess:
        backbone = self.backbone
        return Preprocess(backbone.image_size, backbone.mean, backbone.std)

    @cached_property
    def _classifier(self) -> LongTailClassifier:
        backbone = self.backbone
        head = CosineHead(torch.zeros(self.splits.train.num_classes, backbone.feature_dim), self.config.head.scale)
        return self.runtime.place(LongTailClassifier(backbone.image_encoder, head))

    @cached_property
    def _trainable(self) -> dict[str, bool]:
        """Which parameters the architecture trains (PEFT freezes the encoder); restored at every load."""
        return {name: param.requires_grad for name, param in self._classifier.named_parameters()}

    def zero_shot_classifier(self) -> LongTailClassifier:
        """theta_0: the pretrained encoder and a head from class prompts (class means without text)."""
        if self._checkpoint_loaded:
            raise RuntimeError("theta_0 is built from the pretrained weights: build it before loading a checkpoint")
        model, backbone = self._classifier, self.backbone
        names = list(self.splits.train.class_names)
        if backbone.text_tower is not None:
            weight = prompt_embeddings(backbone.text_tower, names, self.config.head.templates, self.runtime)
        else:
            weight = class_mean_features(model.encoder, backbone.feature_dim, self.splits.train, self)
        with torch.no_grad():
            model.head.weight.copy_(weight)
        return model

    def classifier_from(self, checkpoint: Checkpoint) -> LongTailClassifier:
        """The run's classifier holding the weights of a member, soup or final checkpoint, ready to train."""
        model = self._classifier
        trainable = self._trainable
        try:
            model.load_state_dict(checkpoint.load(), strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{checkpoint.path} does not fit the configured backbone: {err}") from err
        self._checkpoint_loaded = True
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])
        return model

    def features(self, encoder: nn.Module, split: LabelledImages) -> torch.Tensor:
        """The encoder's features of every image of ``split`` (evaluation transform), computed on the run's
        device and kept in host memory, where data loaders can batch them."""
        encoder.eval()
        runtime = self.runtime
        loader = runtime.loader(EvaluationSamples(split, self.preprocess), batch_size=FEATURE_BATCH_SIZE)
        with runtime.inference():
            batches = [encoder(runtime.place(images)).float().cpu() for images, _ in loader]
        return torch.cat(batches)


def class_mean_features(
    encoder: nn.Module, feature_dim: int, split: LabelledImages, context: RunContext
) -> torch.Tensor:
    """Per class: the mean of its normalised image features (head init for backbones without text)."""
    features = torch.nn.functional.normalize(context.features(encoder, split), dim=-1)
    sums = torch.zeros(split.num_classes, feature_dim).index_add_(0, torch.as_tensor(split.labels), features)
    counts = torch.as_tensor(split.class_counts()).clamp_min(1)[:, None]
    return torch.nn.functional.normalize(sums / counts, dim=-1)
