"""What a training cost: optimizer steps, samples the loss saw, wall time and peak memory."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from ltsoups.schema import StrictModel
from ltsoups.settings import Sampling

if TYPE_CHECKING:
    import torch

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


class MemoryMeasure(str, Enum):
    CUDA_ALLOCATED = "cuda-allocated"
    """torch's peak of allocated CUDA memory on the training's device"""
    PROCESS_RSS = "process-rss"
    """the process's peak resident set (Linux VmHWM, reset when the training starts): model, data and Python"""
    NONE = "unmeasured"


class TrainingCost(StrictModel):
    """The cost of one or more trainings (summed; peak memory: the largest peak)."""

    trainings: int = Field(ge=0, description="how many trainings this sums")
    steps: int = Field(ge=0, description="optimizer steps")
    samples: int = Field(ge=0, description="training samples the loss saw (the sum of the batch sizes)")
    seconds: float = Field(ge=0, description="wall time of the training calls")
    peak_memory_bytes: int | None = Field(None, description="largest peak memory of the trainings")
    memory_measure: MemoryMeasure = MemoryMeasure.NONE

    @classmethod
    def total(cls, costs: Sequence[TrainingCost]) -> TrainingCost:
        peaks = [cost.peak_memory_bytes for cost in costs if cost.peak_memory_bytes is not None]
        measures = {cost.memory_measure for cost in costs if cost.peak_memory_bytes is not None}
        return cls(
            trainings=sum(cost.trainings for cost in costs),
            steps=sum(cost.steps for cost in costs),
            samples=sum(cost.samples for cost in costs),
            seconds=sum(cost.seconds for cost in costs),
            peak_memory_bytes=max(peaks) if peaks else None,
            memory_measure=measures.pop() if len(measures) == 1 else MemoryMeasure.NONE,
        )


def samples_seen(size: int, batch_size: int, steps: int, sampling: Sampling) -> int:
    """Samples in ``steps`` batches. Instance-balanced (``StepBatches``): every epoch of ceil(size / batch)
    steps sees all ``size`` samples, its last batch short; a partial epoch's first k steps see k full
    batches. Class-balanced (``ClassBalancedBatches``): every batch is full."""
    if sampling is Sampling.CLASS_BALANCED:
        return steps * batch_size
    per_epoch = -(-size // batch_size)
    return (steps // per_epoch) * size + (steps % per_epoch) * batch_size


class CostMeter:
    """Wall time and peak memory of the block it measures: ``with meter.measure(): train(...)``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self.peak_memory_bytes: int | None = None
        self.memory_measure = MemoryMeasure.NONE

    @contextmanager
    def measure(self) -> Iterator[None]:
        import torch

        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        rss = not cuda and _reset_peak_rss()
        started = time.perf_counter()
        yield
        self.seconds = time.perf_counter() - started
        if cuda:
            self.peak_memory_bytes = torch.cuda.max_memory_allocated(self.device)
            self.memory_measure = MemoryMeasure.CUDA_ALLOCATED
        elif rss:
            self.peak_memory_bytes, self.memory_measure = _peak_rss(), MemoryMeasure.PROCESS_RSS

    def cost(self, steps: int, samples: int) -> TrainingCost:
        return TrainingCost(
            trainings=1,
            steps=steps,
            samples=samples,
            seconds=self.seconds,
            peak_memory_bytes=self.peak_memory_bytes,
            memory_measure=self.memory_measure,
        )


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _peak_rss() is not None


def _peak_rss() -> int | None:
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text())
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None
