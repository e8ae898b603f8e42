"""What rebuilds a saved classifier without its run: backbone, head, class names, preprocessing, class sizes.

Members, soups and final models carry a ``ClassifierSpec`` in their checkpoint sidecar under
``"classifier"``, so that ``ltsoups.load_classifier`` and ``ltsoups export`` need nothing but the
checkpoint: no workdir, params.yaml or dataset.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from ltsoups.data.stats import ShotThresholds
from ltsoups.schema import StrictModel
from ltsoups.settings import EvaluationSettings

SIDECAR_KEY = "classifier"
SPEC_VERSION = 1


class _SpecModel(StrictModel):
    # Read back from JSON sidecars: arrays become tuples and enum values their members, nothing else coerces.
    model_config = ConfigDict(strict=True)


class BackboneRecord(_SpecModel):
    """The backbone plugin and the params it was configured with (validated again by that plugin on load)."""

    name: str = Field(min_length=1, description="registered backbone plugin, e.g. open-clip or timm")
    params: dict[str, Any] = Field(description="the plugin's Params as the run validated them, JSON")
    peft_folded: bool = Field(
        description="the checkpoint holds plain encoder weights although the backbone trains LoRA adapters "
        "(a soup merged with merge.fold_lora); false when it holds the adapters, or when there is no PEFT"
    )


class PreprocessSpec(_SpecModel):
    """How an image becomes the model's input at evaluation time."""

    image_size: int = Field(ge=1, description="side of the square input, pixels")
    mean: tuple[float, float, float] = Field(strict=False, description="per-channel mean subtracted (RGB, 0..1)")
    std: tuple[float, float, float] = Field(strict=False, description="per-channel std divided by (RGB, 0..1)")
    evaluation: EvaluationSettings = Field(
        description="resize (short side to image_size / crop.fraction), centre crop, interpolation, views"
    )


class ClassifierSpec(_SpecModel):
    """Everything besides the weights that turns a checkpoint into a classifier of images."""

    version: int = Field(SPEC_VERSION, description="layout of this record")
    backbone: BackboneRecord
    head_scale: float = Field(
        gt=0,
        description="cosine head: logits = scale * cos(feature, class vector), times the weights' head.class_scale "
        "per class where LWS trained one",
    )
    class_names: tuple[str, ...] = Field(strict=False, min_length=1, description="in label order")
    preprocess: PreprocessSpec
    thresholds: ShotThresholds = Field(strict=False, description="many / medium / few shot thresholds")
    train_counts: tuple[int, ...] = Field(strict=False, description="training images per class, in label order")

    @model_validator(mode="after")
    def _one_count_per_class(self) -> ClassifierSpec:
        if len(self.train_counts) != len(self.class_names):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.train_counts)} training counts")
        if self.version != SPEC_VERSION:
            raise ValueError(f"classifier spec version {self.version}: this ltsoups reads {SPEC_VERSION}")
        return self

    def sidecar_entry(self) -> dict[str, Any]:
        """The ``"classifier"`` provenance of a checkpoint: ``save_checkpoint(..., **spec.sidecar_entry())``."""
        return {SIDECAR_KEY: self.model_dump(mode="json")}
