"""Resumable training state: weights, EMA, optimizer moments and step, in one safetensors file."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ltsoups.checkpoint import CheckpointError, open_checkpoint, save_checkpoint
from ltsoups.training.ema import ParameterEma

KIND = "resume-state"


class ResumeState:
    """The state of an unfinished training at ``path``; ``fingerprint`` ties it to one configuration."""

    def __init__(self, path: Path, fingerprint: str = "") -> None:
        self.path, self.fingerprint = path, fingerprint

    def exists(self) -> bool:
        return self.path.exists()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".json").unlink(missing_ok=True)

    def save(
        self,
        step: int,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema: ParameterEma,
        best: tuple[float, dict[str, torch.Tensor]] | None,
    ) -> None:
        tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in ema.shadow.items()})
        for index, param in enumerate(_params(optimizer)):
            for key, value in optimizer.state.get(param, {}).items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
        if best is not None:
            tensors.update({f"best.{k}": v for k, v in best[1].items()})
        save_checkpoint(
            self.path,
            {k: v.detach().cpu().clone() for k, v in tensors.items()},
            kind=KIND,
            step=step,
            ema_updates=ema.updates,
            best_score=best[0] if best is not None else None,
            fingerprint=self.fingerprint,
        )

    def restore(
        self, module: nn.Module, optimizer: torch.optim.Optimizer, ema: ParameterEma, total: int
    ) -> tuple[int, tuple[float, dict[str, torch.Tensor]] | None]:
        """Load the state into the given objects; return (next step, best snapshot)."""
        checkpoint = open_checkpoint(self.path, expect_kind=KIND)
        meta = checkpoint.sidecar
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"{self.path}: resume state was written by a different configuration or manifest; "
                "delete it to start this training over"
            )
        step = int(meta["step"])
        if not 0 <= step <= total:
            raise CheckpointError(f"{self.path}: resume step {step} is outside 0..{total}")
        tensors = checkpoint.load()
        device = next(module.parameters()).device
        module.load_state_dict(_strip(tensors, "model."), strict=True)
        for name, value in _strip(tensors, "ema.").items():
            ema.shadow[name].copy_(value)
        ema.updates = int(meta["ema_updates"])
        for index, param in enumerate(_params(optimizer)):
            state = _strip(tensors, f"optim.{index}.")
            if state:
                optimizer.state[param] = {k: v.to(device) if k != "step" else v for k, v in state.items()}
        best_state = _strip(tensors, "best.")
        best = (float(meta["best_score"]), best_state) if best_state else None
        return step, best


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn Ctrl-C into a flag read at step boundaries, so the state saved is a whole step's."""
    requested = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        requested["flag"] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: interrupts cannot be deferred here
        yield lambda: False
        return
    try:
        yield lambda: requested["flag"]
    finally:
        signal.signal(signal.SIGINT, previous)
