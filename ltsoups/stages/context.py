"""Shared loading for stages: the plugins, the dataset, and one classifier per process on the run's device."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ltsoups.checkpoint import Checkpoint, CheckpointError
from ltsoups.classifier_spec import BackboneRecord, ClassifierSpec, PreprocessSpec
from ltsoups.config import LtSoupsConfig
from ltsoups.contracts import Dataset, LoadedBackbone
from ltsoups.data.dataset import DatasetSplits, LabelledImages
from ltsoups.evaluation import KEPT_BYTES, EvaluationInputs, predict
from ltsoups.model import CosineHead, LongTailClassifier, prompt_embeddings
from ltsoups.peft.adapters import is_lora_state, unfold_lora
from ltsoups.registry import PluginChoice, PluginRegistry, installed_registry
from ltsoups.runtime import Runtime
from ltsoups.stages.image_store import ImageStore
from ltsoups.training.batches import ImageSamples
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
    images: ImageStore | None = None
    """where generated images are read from and kept for the next process (None: drawn in this one)"""
    _checkpoint_loaded: bool = field(default=False, init=False)

    def derive(self, config: LtSoupsConfig) -> RunContext:
        """A context for ``config`` sharing what this one loads that ``config`` would load the same.

        The dataset is shared when the data sections agree; the backbone and its classifier too when
        data, backbone, head and runtime agree (loaded here first if they are not yet), and the evaluation
        inputs and logits when the evaluation sections agree as well. Contexts sharing
        a classifier can no longer build theta_0 from it, as either may load a checkpoint into it: both
        are then marked as having loaded one.
        """

        def same(*sections: str) -> bool:
            return all(getattr(config, name) == getattr(self.config, name) for name in sections)

        derived = RunContext(config, self.registry, self.images)
        shared = ["runtime"] if same("runtime") else []
        if same("data"):
            shared += ["dataset", "splits", "train_counts"]
        if same("data", "backbone", "head", "runtime"):
            shared += ["backbone", "_classifier", "_trainable"]
            if same("evaluation"):
                shared += ["preprocess", "_evaluation_inputs", "_logits"]
        for name in shared:
            vars(derived)[name] = getattr(self, name)  # the cached_property's value, computed here if need be
        if "_classifier" in shared:
            self._checkpoint_loaded = derived._checkpoint_loaded = True
        return derived

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
        splits = self.dataset.load()
        return splits if self.images is None else self.images.serving(splits)

    @cached_property
    def train_counts(self) -> np.ndarray:
        return self.splits.train.class_counts()

    @cached_property
    def backbone(self) -> LoadedBackbone:
        return self.plugin(self.config.backbone).load(num_classes=self.splits.train.num_classes)

    @cached_property
    def preprocess(self) -> Preprocess:
        backbone = self.backbone
        return Preprocess(backbone.image_size, backbone.mean, backbone.std, self.config.evaluation)

    @cached_property
    def _evaluation_inputs(self) -> dict[str, EvaluationInputs]:
        return {}

    @cached_property
    def _logits(self) -> dict[tuple[str, str], np.ndarray]:
        """(weights sha256, split) -> the logits of a checkpoint with those weights"""
        return {}

    def evaluation_inputs(self, split: str) -> EvaluationInputs:
        """The evaluation views of the ``split`` ("val", "test") images, preprocessed once for every model scored
        in this process when they fit (see `EvaluationInputs`)."""
        if split not in self._evaluation_inputs:
            images = getattr(self.splits, split)
            self._evaluation_inputs[split] = EvaluationInputs(images, self.preprocess, self.runtime)
        return self._evaluation_inputs[split]

    def checkpoint_logits(self, checkpoint: Checkpoint, split: str) -> np.ndarray:
        """The logits of ``checkpoint`` on ``split``, by the run's classifier: kept for the next request of the same
        weights while the logits kept fit in KEPT_BYTES (merge scores the running soups on validation, evaluate
        asks for them again)."""
        key = (checkpoint.sidecar.weights_sha256, split)
        if key in self._logits:
            return self._logits[key]
        logits = predict(self.classifier_from(checkpoint), self.evaluation_inputs(split))
        if sum(kept.nbytes for kept in self._logits.values()) + logits.nbytes <= KEPT_BYTES:
            self._logits[key] = logits
        return logits

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

    def classifier_spec(self, tensor_names: Iterable[str]) -> ClassifierSpec:
        """What rebuilds a checkpoint of the run's classifier holding tensors of these names (its sidecar's)."""
        config, backbone = self.config, self.backbone
        lora = is_lora_state(self._classifier.state_dict())
        spec = config.backbone
        return ClassifierSpec(
            backbone=BackboneRecord(
                name=spec.name,
                params=spec.params.model_dump(mode="json", by_alias=True),
                peft_folded=lora and not is_lora_state(tensor_names),
            ),
            head_scale=config.head.scale,
            class_names=tuple(self.splits.train.class_names),
            preprocess=PreprocessSpec(
                image_size=backbone.image_size, mean=backbone.mean, std=backbone.std, evaluation=config.evaluation
            ),
            thresholds=config.data.thresholds,
            train_counts=tuple(int(count) for count in self.train_counts),
        )

    def classifier_from(self, checkpoint: Checkpoint) -> LongTailClassifier:
        """The run's classifier holding the weights of a member, soup or final checkpoint, ready to train."""
        return self.classifier_with(checkpoint.load(), str(checkpoint.path))

    def classifier_with(self, state: Mapping[str, torch.Tensor], source: str) -> LongTailClassifier:
        """The run's classifier holding ``state`` (a checkpoint's tensors, or a soup merged in memory).

        A soup of LoRA members merged folded (plain encoder weights) goes into the LoRA classifier
        as its weights' ``original`` with zero LoRA factors: the adapted weights are the folded ones.
        """
        model = self._classifier
        trainable = self._trainable
        template = model.state_dict()
        if is_lora_state(template) and not is_lora_state(state):
            try:
                state = unfold_lora(state, template)
            except ValueError as err:
                raise CheckpointError(f"{source} does not fit the configured LoRA backbone: {err}") from err
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{source} does not fit the configured backbone: {err}") from err
        self._checkpoint_loaded = True
        for name, param in model.named_parameters():
            param.requires_grad_(trainable.get(name, True))  # head.class_scale: only in a state LWS trained
        return model

    def features(
        self,
        encoder: nn.Module,
        split: LabelledImages,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The encoder's features of every image of ``split``, computed on the run's device and kept in host
        memory, where data loaders can batch them.

        ``transform`` makes each image's input (default: ``preprocess.fixed``, no augmentation); one giving
        several views per image (``preprocess.views``) gives (images, views, dim) features.
        """
        encoder.eval()
        runtime = self.runtime
        samples = ImageSamples(split, transform or self.preprocess.fixed)
        loader = runtime.loader(samples, batch_size=FEATURE_BATCH_SIZE)
        with runtime.inference():
            batches = [self._encoded(encoder, images, runtime) for images, _ in loader]
        return torch.cat(batches)

    @staticmethod
    def _encoded(encoder: nn.Module, images: torch.Tensor, runtime: Runtime) -> torch.Tensor:
        """Features of (batch, C, H, W) images, or (batch, views, dim) of (batch, views, C, H, W) ones."""
        if images.dim() == 4:
            return encoder(runtime.place(images)).float().cpu()
        chunks = images.flatten(0, 1).split(FEATURE_BATCH_SIZE)
        features = torch.cat([encoder(runtime.place(chunk)).float() for chunk in chunks])
        return features.view(*images.shape[:2], -1).cpu()


def class_mean_features(
    encoder: nn.Module, feature_dim: int, split: LabelledImages, context: RunContext
) -> torch.Tensor:
    """Per class: the mean of its normalised image features (head init for backbones without text)."""
    features = torch.nn.functional.normalize(context.features(encoder, split), dim=-1)
    sums = torch.zeros(split.num_classes, feature_dim).index_add_(0, torch.as_tensor(split.labels), features)
    counts = torch.as_tensor(split.class_counts()).clamp_min(1)[:, None]
    return torch.nn.functional.normalize(sums / counts, dim=-1)
