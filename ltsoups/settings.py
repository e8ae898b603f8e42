"""What the optimisation loop and the image preprocessing need to know, one small model per concern.

The application's config composes these sections (``train.optim``, ``train.schedule``, ``evaluation``,
...); the loop itself only ever sees a ``LoopSettings``.

A setting that only one choice uses (AdamW's betas, SGD's momentum, ...) defaults to None, meaning
"that choice's default": a value written for another choice than the one in force is an error
naming it, never silently unused.
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from ltsoups.schema import SettingsModel


class Optimizer(str, Enum):
    ADAMW = "adamw"
    SGD = "sgd"


ADAMW_BETAS = (0.9, 0.999)
SGD_MOMENTUM = 0.9  # LIFT's


class OptimizerSettings(SettingsModel):
    """The optimiser and the batch it steps on: AdamW (the paper) or SGD with momentum (LIFT)."""

    name: Optimizer = Field(
        Optimizer.ADAMW,
        description="adamw: AdamW, decoupled weight decay (paper, authors' code); sgd: SGD with momentum and "
        "L2 weight decay, torch.optim.SGD (LIFT)",
    )
    lr: float = Field(3e-4, gt=0, description="peak learning rate (paper: 3e-4; authors' script: 3e-5; LIFT: 0.01)")
    weight_decay: float = Field(
        1e-2, ge=0, description="AdamW: decoupled weight decay; SGD: L2 penalty added to the gradient (LIFT: 5e-4)"
    )
    betas: tuple[float, float] | None = Field(None, description=f"AdamW betas (adamw only); default {ADAMW_BETAS}")
    momentum: float | None = Field(
        None, ge=0, lt=1, description=f"SGD momentum (sgd only); default {SGD_MOMENTUM} (LIFT)"
    )
    nesterov: bool | None = Field(None, description="SGD Nesterov momentum (sgd only); default false (LIFT)")
    batch_size: int = Field(128, ge=1, description="samples per optimizer step")
    micro_batch_size: int | None = Field(
        None, ge=1, description="split each batch into micro-batches (gradient accumulation); default: no split"
    )

    @model_validator(mode="after")
    def _settings_of_the_chosen_optimizer(self) -> OptimizerSettings:
        foreign = ("momentum", "nesterov") if self.name is Optimizer.ADAMW else ("betas",)
        written = [f"{key} {getattr(self, key)!r}" for key in foreign if getattr(self, key) is not None]
        if written:
            raise ValueError(f"{', '.join(written)} has no effect with name {self.name.value}; drop it or change name")
        if self.nesterov and self.sgd_momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of micro_batch_size")
        return self

    @property
    def adamw_betas(self) -> tuple[float, float]:
        return self.betas or ADAMW_BETAS

    @property
    def sgd_momentum(self) -> float:
        return SGD_MOMENTUM if self.momentum is None else self.momentum


class EpochSteps(str, Enum):
    CEIL = "ceil"
    FLOOR_PLUS_ONE = "floor-plus-one"


class ScheduleSettings(SettingsModel):
    """How long a training runs, and its learning-rate curve: linear warmup, then cosine to a floor."""

    epochs: float = Field(10, gt=0, description="passes over the data the model trains on (a member: its subset)")
    epoch_steps: EpochSteps = Field(
        EpochSteps.CEIL,
        description="optimizer steps one epoch counts: ceil: ceil(n / batch_size), the batches of one pass; "
        "floor-plus-one: n // batch_size + 1 (authors' code: one step more when batch_size divides n)",
    )
    min_steps: int = Field(100, ge=1, description="train at least this many steps (authors' code: 100)")
    warmup_min_steps: int = Field(
        100, ge=0, description="warmup lasts max(warmup_min_steps, warmup_fraction*steps) (paper: 100; authors: 20)"
    )
    warmup_fraction: float = Field(0.01, ge=0, le=1, description="see warmup_min_steps")
    final_lr_fraction: float = Field(0.1, ge=0, le=1, description="cosine decays to this fraction of lr")


class EmaInit(str, Enum):
    THETA0 = "theta0"
    FIRST_STEP = "first-step"


class EmaSettings(SettingsModel):
    """An exponential moving average of the weights, updated every step; it is what the training returns."""

    decay: float = Field(
        0.99,
        ge=0,
        lt=1,
        description="EMA decay per step (paper: mu = 1 - decay = 0.01); 0: no EMA, the training returns its raw "
        "weights and keeps no average (LIFT, the 'no EMA' baselines)",
    )
    init: EmaInit = Field(
        EmaInit.THETA0,
        description="theta0: the EMA starts at the weights training starts from (paper, Algorithm 1); "
        "first-step: the EMA copies the weights after step 1 (authors' code, torch AveragedModel); "
        "no effect with decay 0",
    )

    @property
    def enabled(self) -> bool:
        return self.decay > 0


class Selection(str, Enum):
    FINAL = "final"
    BEST_VAL = "best-val"


class SelectionSettings(SettingsModel):
    """Which EMA weights the training keeps."""

    mode: Selection = Field(
        Selection.FINAL,
        description="final: the last EMA weights (paper); best-val: the best of `snapshots` EMA snapshots by "
        "validation balanced accuracy, predicted as the `evaluation` section says (authors' code)",
    )
    snapshots: int = Field(5, ge=1, description="with mode best-val: how many evaluations, evenly spaced")


class Sampling(str, Enum):
    INSTANCE_BALANCED = "instance-balanced"
    CLASS_BALANCED = "class-balanced"


CLASS_VISIT_SAMPLES = 4  # Kang et al.'s ClassAwareSampler default (num_samples_cls), also in the authors' code


class SamplingSettings(SettingsModel):
    """Which samples each batch holds."""

    mode: Sampling = Field(
        Sampling.INSTANCE_BALANCED,
        description="instance-balanced: each epoch a fresh permutation of the data (paper, authors' code); "
        "class-balanced: Kang et al.'s class-aware sampling for cRT: classes in shuffled cycles, each visit "
        "taking `samples_per_visit` samples from that class's own shuffled cycle, so every class is equally "
        "frequent whatever its size",
    )
    samples_per_visit: int | None = Field(
        None, ge=1, description=f"class-balanced only: samples per class visit; default {CLASS_VISIT_SAMPLES} (Kang)"
    )

    @model_validator(mode="after")
    def _visit_needs_class_balance(self) -> SamplingSettings:
        if self.samples_per_visit is not None and self.mode is not Sampling.CLASS_BALANCED:
            raise ValueError(f"samples_per_visit {self.samples_per_visit} has no effect with mode {self.mode.value}")
        return self

    @property
    def visit(self) -> int:
        return self.samples_per_visit or CLASS_VISIT_SAMPLES


class Interpolation(str, Enum):
    BICUBIC = "bicubic"
    BILINEAR = "bilinear"


class AugmentSettings(SettingsModel):
    """Training-time image augmentation: random resized crop and horizontal flip."""

    enabled: bool = Field(
        True, description="off: training images are resized to the input size and centre-cropped, nothing random"
    )
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range")
    hflip: bool = Field(True, description="random horizontal flips")
    interpolation: Interpolation = Field(
        Interpolation.BICUBIC,
        description="resampling of the crop: bicubic (open_clip's) or bilinear (torchvision's default: the "
        "authors' and LIFT's RandomResizedCrop)",
    )

    @model_validator(mode="after")
    def _ordered_scale(self) -> AugmentSettings:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        return self


class LoopSettings(SettingsModel):
    """Everything the optimisation loop reads."""

    optim: OptimizerSettings = OptimizerSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    ema: EmaSettings = EmaSettings()
    selection: SelectionSettings = SelectionSettings()
    sampling: SamplingSettings = Field(
        SamplingSettings(), description="which samples each batch holds: instance- or class-balanced"
    )
    resume_every: int = Field(50, ge=1, description="write a resumable state every this many steps")


# ------------------------------------------------------------------------------------ evaluation


class CropSettings(SettingsModel):
    """The evaluation image: its short side resized to round(input size / fraction), the centre cropped."""

    fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="input size / resized short side: 1.0 resizes straight to the input size (open_clip's "
        "eval transform); 0.875 is Resize(256) + CenterCrop(224) (the authors' and LIFT's test transform)",
    )
    interpolation: Interpolation = Field(
        Interpolation.BICUBIC, description="bicubic (open_clip's) or bilinear (the authors' and LIFT's)"
    )


class EnsembleMode(str, Enum):
    NONE = "none"
    FIVE_CROP = "five-crop"
    TEN_CROP = "ten-crop"


TTE_EXPAND = 24  # LIFT's `expand`: pixels added to the resized short side


class EnsembleSettings(SettingsModel):
    """Test-time ensembling: several views of each image, their logits averaged (LIFT's `tte`)."""

    mode: EnsembleMode = Field(
        EnsembleMode.NONE,
        description="none: one centre crop (the paper reports every method so); five-crop: the four corners and "
        "the centre (LIFT's tte_mode fivecrop, its default); ten-crop: those five and the five of the mirrored "
        "image (tencrop); views are cut from the image resized as `crop` says, `expand` pixels larger",
    )
    expand: int | None = Field(
        None,
        ge=0,
        description=f"with a mode: pixels added to the resized short side; default {TTE_EXPAND} (LIFT's, for 224-pixel "
        "inputs: scale it for others, e.g. 4 for the embedded 32-pixel world)",
    )

    @model_validator(mode="after")
    def _expand_needs_a_mode(self) -> EnsembleSettings:
        if self.expand is not None and self.mode is EnsembleMode.NONE:
            raise ValueError(f"expand {self.expand} has no effect with mode none; set a mode or drop expand")
        return self

    @property
    def views(self) -> int:
        return {EnsembleMode.NONE: 1, EnsembleMode.FIVE_CROP: 5, EnsembleMode.TEN_CROP: 10}[self.mode]

    @property
    def margin(self) -> int:
        if self.mode is EnsembleMode.NONE:
            return 0
        return TTE_EXPAND if self.expand is None else self.expand


class EvaluationSettings(SettingsModel):
    """How validation and test predictions are made: the crop, and optional test-time ensembling.

    Used by every prediction on val or test (evaluate, the merge's val scores, best-val selection);
    never by training, whose images follow ``augment``.
    """

    crop: CropSettings = Field(CropSettings(), description="the centre crop: its fraction and resampling")
    ensemble: EnsembleSettings = Field(
        EnsembleSettings(), description="test-time ensembling: several crops, logits averaged"
    )


class SearchMode(str, Enum):
    """How `merge.search` chooses the recursive merge's lambdas on the validation split."""

    LAMBDA_N = "lambda-n"
    """one lambda for every factor and N, a grid over both"""
    PER_FACTOR = "per-factor"
    """one lambda per factor, by coordinate ascent over the grid of lambdas; N the best prefix"""
