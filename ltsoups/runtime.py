"""Where and how the network runs: one device, precision and loader setup for every stage of a run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, field_validator

from ltsoups.schema import SettingsModel

# torch is imported where it is used: the config schema imports this module, and the CLI starts without torch.
if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

Placeable = TypeVar("Placeable", "nn.Module", "torch.Tensor")
_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class RuntimeSettings(SettingsModel):
    """Hardware settings: they decide where a stage runs and how fast, never what it computes on the CPU."""

    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'")
    precision: Precision = Field(
        Precision.FP32, description="autocast precision on GPU, training and inference alike; CPU always runs fp32"
    )
    workers: int = Field(0, ge=0, description="data-loader worker processes of every stage")

    @field_validator("device")
    @classmethod
    def _a_device_name(cls, device: str) -> str:
        # Whether the GPU exists is checked where the network runs (Runtime.of): on a Ray cluster the
        # driver that validates the config may have none while its workers do.
        if _DEVICE_NAME.fullmatch(device) is None:
            raise ValueError("not a device; allowed: 'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N' (N from 0)")
        return device


@dataclass(frozen=True)
class Runtime:
    """The resolved device of a run, with the autocast and data loaders every stage uses on it."""

    device: torch.device
    precision: Precision
    workers: int

    @classmethod
    def of(cls, settings: RuntimeSettings) -> Runtime:
        """The device ``settings`` name, resolved on this machine; a GPU it does not have is an error naming it."""
        import torch

        name = settings.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise ValueError(
                    f"runtime.device: {name!r} is not allowed on this machine: torch finds no CUDA device; "
                    "allowed here: 'auto' or 'cpu'"
                )
            if device.index is not None and device.index >= count:
                raise ValueError(
                    f"runtime.device: {name!r} is not allowed on this machine: it has {count} CUDA device(s); "
                    f"allowed here: 'auto', 'cpu', 'cuda' or 'cuda:0' to 'cuda:{count - 1}'"
                )
        return cls(device, settings.precision, settings.workers)

    @property
    def mixed_precision(self) -> bool:
        return self.device.type == "cuda" and self.precision is not Precision.FP32

    def place(self, value: Placeable) -> Placeable:
        """``value`` on the run's device: a module (its weights move), or a batch (copied without waiting,
        from pinned memory). Every stage puts its models and inputs there through this one method."""
        import torch

        if isinstance(value, torch.Tensor):
            return value.to(self.device, non_blocking=True)
        return value.to(self.device)

    def autocast(self) -> AbstractContextManager[Any]:
        """Autocast at the configured precision on a GPU; a no-op on the CPU or in fp32."""
        if not self.mixed_precision:
            return nullcontext()
        import torch

        dtype = torch.bfloat16 if self.precision is Precision.BF16 else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def loader(self, dataset: Dataset, **options: Any) -> DataLoader:
        """A DataLoader with the run's workers, and pinned memory when batches go to a GPU."""
        from torch.utils.data import DataLoader

        return DataLoader(dataset, num_workers=self.workers, pin_memory=self.device.type == "cuda", **options)

    @contextmanager
    def inference(self) -> Iterator[None]:
        """No gradients, at the configured precision."""
        import torch

        with torch.no_grad(), self.autocast():
            yield
