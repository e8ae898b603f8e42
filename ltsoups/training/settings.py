"""What the optimisation loop needs to know, one small model per concern.

The application's config composes these sections (``train.optim``, ``train.schedule``, ...); the
loop itself only ever sees a ``LoopSettings``.
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from ltsoups.schema import StrictModel


class OptimizerSettings(StrictModel):
    """AdamW and the batch it steps on."""

    lr: float = Field(3e-4, gt=0, description="peak learning rate (paper: 3e-4; authors' script: 3e-5)")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW decoupled weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    batch_size: int = Field(128, ge=1, description="samples per optimizer step")
    micro_batch_size: int | None = Field(
        None, ge=1, description="split each batch into micro-batches (gradient accumulation); default: no split"
    )

    @model_validator(mode="after")
    def _whole_micro_batches(self) -> OptimizerSettings:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch_size")
        return self


class ScheduleSettings(StrictModel):
    """How long a training runs, and its learning-rate curve: linear warmup, then cosine to a floor."""

    epochs: float = Field(10, gt=0, description="passes over the data the model trains on (a member: its subset)")
    min_steps: int = Field(100, ge=1, description="train at least this many steps (authors' code: 100)")
    warmup_min_steps: int = Field(100, ge=0, description="warmup lasts max(warmup_min_steps, warmup_fraction*steps)")
    warmup_fraction: float = Field(0.01, ge=0, le=1, description="see warmup_min_steps")
    final_lr_fraction: float = Field(0.1, ge=0, le=1, description="cosine decays to this fraction of lr")


class EmaInit(str, Enum):
    THETA0 = "theta0"
    FIRST_STEP = "first-step"


class EmaSettings(StrictModel):
    """An exponential moving average of the weights, updated every step; it is what the training returns."""

    decay: float = Field(0.99, ge=0, lt=1, description="EMA decay per step (paper: mu = 1 - decay = 0.01)")
    init: EmaInit = Field(
        EmaInit.THETA0,
        description="theta0: the EMA starts at the weights training starts from (paper, Algorithm 1); "
        "first-step: the EMA copies the weights after step 1 (authors' code, torch AveragedModel)",
    )


class Selection(str, Enum):
    FINAL = "final"
    BEST_VAL = "best-val"


class SelectionSettings(StrictModel):
    """Which EMA weights the training keeps."""

    mode: Selection = Field(
        Selection.FINAL,
        description="final: the last EMA weights (paper); best-val: the best of `snapshots` EMA snapshots by "
        "validation balanced accuracy (authors' code)",
    )
    snapshots: int = Field(5, ge=1, description="with mode best-val: how many evaluations, evenly spaced")


class AugmentSettings(StrictModel):
    """Training-time image augmentation: random resized crop and horizontal flip."""

    enabled: bool = Field(True, description="off: training images get the evaluation transform")
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range")
    hflip: bool = Field(True, description="random horizontal flips")

    @model_validator(mode="after")
    def _ordered_scale(self) -> AugmentSettings:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        return self


class LoopSettings(StrictModel):
    """Everything the optimisation loop reads."""

    optim: OptimizerSettings = OptimizerSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    ema: EmaSettings = EmaSettings()
    selection: SelectionSettings = SelectionSettings()
    resume_every: int = Field(50, ge=1, description="write a resumable state every this many steps")
