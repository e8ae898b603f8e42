"""What determines the shipped mini-CLIP's weights: the pretraining recipe's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ltsoups.world.render import RenderStyle


class PretrainConfig(BaseModel):
    """Everything that determines the pretrained weights (with the code version)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="Seed of the pairs, the initial weights and the batch order.")
    steps: int = Field(1500, ge=1, description="Optimiser steps.")
    batch_size: int = Field(256, ge=2, description="(image, caption) pairs per contrastive batch.")
    num_pairs: int = Field(60_000, ge=2, description="Distinct (image, caption) pairs drawn from the world.")
    eval_pairs: int = Field(1024, ge=2, description="Held-out pairs on which the contrastive loss is reported.")
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(
        0.1, ge=0, description="AdamW weight decay on matrices (not on gains, biases, embeddings)."
    )
    warmup_steps: int = Field(100, ge=0, description="Linear warm-up steps before the cosine decay.")
    hold_out_task_classes: bool = Field(
        True, description="Never show the (colour, pattern, shape) combinations that name the embedded task's classes."
    )
    style: RenderStyle = Field(default_factory=RenderStyle, description="Clutter, noise and jitter of the pairs.")
    task_seed: int = Field(0, ge=0, description="Seed of the embedded task whose test split scores zero-shot accuracy.")
    weights_dtype: Literal["float16", "float32"] = Field("float16", description="dtype of the saved weights.")

    @model_validator(mode="after")
    def _whole_batches(self) -> PretrainConfig:
        if min(self.num_pairs, self.eval_pairs) < self.batch_size:
            raise ValueError(f"num_pairs and eval_pairs must each hold a batch of {self.batch_size} pairs")
        return self
