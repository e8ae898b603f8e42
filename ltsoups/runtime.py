"""Where and how the network runs: one device, precision and loader setup for every stage of a run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field

from ltsoups.schema import SettingsModel

# torch is imported where it is used: the config schema imports this module, and the CLI starts without torch.
if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

Placeable = TypeVar("Placeable", "nn.Module", "torch.Tensor")


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


@dataclass(frozen=True)
class Runtime:
    """The resolved device of a run, with the autocast and data loaders every stage uses on it."""

    device: torch.device
    precision: Precision
    workers: int

    @classmethod
    def of(cls, settings: RuntimeSettings) -> Runtime:
        import torch

        name = settings.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(torch.device(name), settings.precision, settings.workers)

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
