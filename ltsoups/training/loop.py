"""The optimisation loop shared by member training and head retraining."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ltsoups.contracts import LossFn, TrainingObserver
from ltsoups.runtime import Precision, Runtime
from ltsoups.settings import (
    EmaInit,
    LoopSettings,
    Optimizer,
    OptimizerSettings,
    Sampling,
    SamplingSettings,
    Selection,
)
from ltsoups.training.batches import ClassBalancedBatches, StepBatches, derive_seed
from ltsoups.training.ema import ParameterEma
from ltsoups.training.errors import TrainingDiverged
from ltsoups.training.resume import ResumeState, deferred_interrupt
from ltsoups.training.schedule import lr_multiplier, steps_for, warmup_steps


class SilentObserver:
    def on_start(self, total_steps: int, first_step: int) -> None:
        pass

    def on_step(self, step: int, loss: float, lr: float) -> None:
        pass

    def on_validation(self, step: int, score: float) -> None:
        pass


@dataclass(frozen=True)
class TrainSummary:
    """What a training did, without its weights: cheap to keep and to send between processes."""

    steps: int
    resumed_from: int
    final_loss: float
    best_val: float | None


@dataclass(frozen=True)
class TrainResult(TrainSummary):
    state: dict[str, torch.Tensor]

    def summary(self) -> TrainSummary:
        return TrainSummary(self.steps, self.resumed_from, self.final_loss, self.best_val)


def train(
    module: nn.Module,
    samples: Dataset,
    labels: np.ndarray,
    loss_fn: LossFn,
    settings: LoopSettings,
    runtime: Runtime,
    seed: int,
    label: str,
    resume: ResumeState | None = None,
    observer: TrainingObserver | None = None,
    validate: Callable[[dict[str, torch.Tensor]], float] | None = None,
    step_size: Mapping[str, float] | None = None,
) -> TrainResult:
    """Train the parameters of ``module`` that require grad; return its EMA (or best-val EMA) weights.

    ``samples`` is indexed by (sample index, augmentation seed); ``labels`` are its classes, in order
    (class-balanced batches draw from them). ``label`` names the run in errors.
    With ``resume`` a resumable state is written every ``settings.resume_every`` steps and on Ctrl-C,
    and picked up when the same training is started again. ``step_size`` names the settings that set
    the size of the updates (``{"train.optim.lr": 3e-4, "head.scale": 30.0}``): a training that diverges
    says them. A NaN or infinite loss, or weights that became NaN or infinite, stop the training.
    """
    observer = observer or SilentObserver()
    optim, schedule, selection = settings.optim, settings.schedule, settings.selection
    runtime.place(module)
    trainable = [p for p in module.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"{label}: nothing to train (no parameter requires grad)")
    if selection.mode is Selection.BEST_VAL and validate is None:
        raise ValueError(f"{label}: best-val selection needs a validation score, and none was given")
    optimizer = build_optimizer(trainable, optim)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.device.type == "cuda" and runtime.precision is Precision.FP16)
    total = steps_for(len(labels), optim.batch_size, schedule)
    warmup = warmup_steps(total, schedule.warmup_min_steps, schedule.warmup_fraction)
    ema = ParameterEma(module, settings.ema.decay, start_from_model=settings.ema.init is EmaInit.THETA0)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    snapshot_every = max(1, total // selection.snapshots)

    start = 0
    if resume is not None and resume.exists():
        start, best = resume.restore(module, optimizer, scaler, ema, total)

    micro = optim.micro_batch_size or optim.batch_size
    batches = step_batches(labels, optim.batch_size, total, seed, start, settings.sampling)
    loader = runtime.loader(samples, batch_sampler=batches)
    observer.on_start(total, start)
    diverged = _Divergence(label, total, step_size or {"optim.lr": optim.lr}, resume)
    loss_value = math.nan
    lr: float | None = None
    with deferred_interrupt() as interrupted:
        for step, (inputs, targets) in enumerate(loader, start=start):
            torch.manual_seed(derive_seed(seed, step, 1))
            lr = optim.lr * lr_multiplier(step, total, warmup, schedule.final_lr_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss_value = 0.0
            for chunk_in, chunk_y in zip(inputs.split(micro), targets.split(micro), strict=True):
                with runtime.autocast():
                    loss = loss_fn(module(runtime.place(chunk_in)), runtime.place(chunk_y))
                if not torch.isfinite(loss):
                    raise diverged(f"loss is {loss.item()}", step + 1, lr)
                scaler.scale(loss * (len(chunk_y) / len(targets))).backward()
                loss_value += loss.item() * len(chunk_y) / len(targets)
            try:
                scaler.step(optimizer)
            except RuntimeError as err:  # torch's optimizers refuse a step size past float's range
                if "overflow" not in str(err):
                    raise
                raise diverged(f"the optimizer step overflowed ({err})", step + 1, lr) from err
            scaler.update()
            ema.update(module)
            observer.on_step(step + 1, loss_value, lr)
            if validate is not None and selection.mode is Selection.BEST_VAL and (step + 1) % snapshot_every == 0:
                candidate = ema.state_dict(module)
                score = validate(candidate)
                observer.on_validation(step + 1, score)
                if best is None or score > best[0]:
                    best = (score, candidate)
            done = step + 1
            stop = interrupted()
            # Stopped on the last step too: the state saved holds the whole training, and the rerun just ends it.
            if resume is not None and (stop or (done < total and done % settings.resume_every == 0)):
                diverged.check_weights(module.state_dict(), done, lr)
                resume.save(done, module, optimizer, scaler, ema, best)
            if stop:
                raise KeyboardInterrupt(f"{label}: interrupted after step {done}; run again to resume")
    final = best[1] if best is not None else ema.state_dict(module)
    diverged.check_weights(final, total, lr)
    return TrainResult(
        state={k: v.detach().cpu() for k, v in final.items()},
        steps=total,
        resumed_from=start,
        final_loss=loss_value,
        best_val=best[0] if best is not None else None,
    )


class _Divergence:
    """The error of a training that diverged: the run, the step, and the settings that size its updates."""

    def __init__(self, label: str, total: int, step_size: Mapping[str, float], resume: ResumeState | None) -> None:
        self.label, self.total, self.step_size, self.resume = label, total, step_size, resume

    def __call__(self, what: str, step: int, lr: float | None) -> TrainingDiverged:
        if self.resume is not None:
            self.resume.discard()  # resuming would replay the same divergence
        settings = ", ".join(f"{name} = {value:g}" for name, value in self.step_size.items())
        at = f" (learning rate {lr:.3g} at that step)" if lr is not None else ""
        return TrainingDiverged(
            f"{self.label}: {what} at step {step} of {self.total}{at}; the size of its updates comes from "
            f"{settings}: lower them"
        )

    def check_weights(self, state: Mapping[str, torch.Tensor], step: int, lr: float | None) -> None:
        """Raise when a floating-point tensor of ``state`` holds a NaN or an infinity (one check per tensor)."""
        for name, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise self(f"weight {name!r} holds NaN or infinite values", step, lr)


def build_optimizer(params: Iterable[torch.Tensor], settings: OptimizerSettings) -> torch.optim.Optimizer:
    """AdamW (the paper) or SGD with momentum (LIFT), one parameter group."""
    if settings.name is Optimizer.SGD:
        return torch.optim.SGD(
            params,
            lr=settings.lr,
            momentum=settings.sgd_momentum,
            nesterov=bool(settings.nesterov),
            weight_decay=settings.weight_decay,
        )
    return torch.optim.AdamW(params, lr=settings.lr, betas=settings.adamw_betas, weight_decay=settings.weight_decay)


def step_batches(
    labels: np.ndarray, batch_size: int, total: int, seed: int, start: int, sampling: SamplingSettings
) -> StepBatches | ClassBalancedBatches:
    """The batches of steps [start, total) as ``sampling`` says; each a pure function of (seed, step)."""
    if sampling.mode is Sampling.CLASS_BALANCED:
        return ClassBalancedBatches(labels, batch_size, total, seed, start, sampling.visit)
    return StepBatches(len(labels), batch_size, total, seed, start)


class ObserverGroup:
    """Forwards every event to several observers (progress bar, tracking, ...)."""

    def __init__(self, *observers: TrainingObserver) -> None:
        self.observers = observers

    def on_start(self, total_steps: int, first_step: int) -> None:
        for observer in self.observers:
            observer.on_start(total_steps, first_step)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        for observer in self.observers:
            observer.on_step(step, loss, lr)

    def on_validation(self, step: int, score: float) -> None:
        for observer in self.observers:
            observer.on_validation(step, score)
