"""Resumable training state: weights, EMA, optimizer moments, fp16 loss scale and step, in one safetensors
file per save.

Each save goes to a new file named by its step, and its sidecar (written last) is the commit mark:
a process killed at any instant leaves the previous committed state intact, so a restart never
finds a weights file that disagrees with its sidecar. Older states are removed once a newer one
is committed.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ltsoups.checkpoint import CheckpointError, open_checkpoint, save_checkpoint, sidecar_path
from ltsoups.training.ema import ParameterEma

KIND = "resume-state"


class ResumeState:
    """The state of an unfinished training beside ``path``; ``fingerprint`` ties it to one configuration.

    ``path`` (e.g. ``resume.safetensors``) names the family: states live at ``resume-step<N>.safetensors``.
    """

    def __init__(self, path: Path, fingerprint: str = "") -> None:
        self.path, self.fingerprint = Path(path), fingerprint
        self._pattern = re.compile(rf"{re.escape(self.path.stem)}-step(\d+){re.escape(self.path.suffix)}")

    def at_step(self, step: int) -> Path:
        return self.path.with_name(f"{self.path.stem}-step{step}{self.path.suffix}")

    def _files(self) -> list[tuple[int, Path]]:
        """Every state file of this family, newest first, committed or not."""
        if not self.path.parent.is_dir():
            return []
        found = [(self._pattern.fullmatch(p.name), p) for p in self.path.parent.iterdir()]
        return sorted(((int(m.group(1)), p) for m, p in found if m), reverse=True)

    def latest(self) -> Path | None:
        """The newest committed state (one whose sidecar was written), or None."""
        return next((path for _, path in self._files() if sidecar_path(path).is_file()), None)

    def exists(self) -> bool:
        return self.latest() is not None

    def discard(self, keep: Path | None = None) -> None:
        """Remove every state of this family (but ``keep``) and what killed writers left behind."""
        for _, path in self._files():
            if path != keep:
                sidecar_path(path).unlink(missing_ok=True)
                path.unlink(missing_ok=True)
        if self.path.parent.is_dir():
            for leftover in self.path.parent.glob(f".{self.path.stem}-step*.tmp"):
                leftover.unlink(missing_ok=True)

    def save(
        self,
        step: int,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
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
        target = self.at_step(step)
        save_checkpoint(
            target,
            {k: v.detach().cpu().clone() for k, v in tensors.items()},
            kind=KIND,
            step=step,
            ema_updates=ema.updates,
            grad_scaler=scaler.state_dict(),  # {} unless fp16: its scale decides which later steps are skipped
            best_score=best[0] if best is not None else None,
            fingerprint=self.fingerprint,
        )
        self.discard(keep=target)

    def restore(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        ema: ParameterEma,
        total: int,
    ) -> tuple[int, tuple[float, dict[str, torch.Tensor]] | None]:
        """Load the newest committed state into the given objects; return (next step, best snapshot)."""
        path = self.latest()
        if path is None:
            raise CheckpointError(f"no resumable state beside {self.path}")
        checkpoint = open_checkpoint(path, expect_kind=KIND)
        meta = checkpoint.sidecar
        if meta.fingerprint != self.fingerprint:
            raise CheckpointError(
                f"{path}: resume state was written by a different configuration or manifest; "
                "delete it to start this training over"
            )
        step = meta.step
        if step is None or not 0 <= step <= total:
            raise CheckpointError(f"{path}: resume step {step} is outside 0..{total}")
        tensors = checkpoint.load()
        device = next(module.parameters()).device
        module.load_state_dict(_strip(tensors, "model."), strict=True)
        averages = _strip(tensors, "ema.")
        if averages.keys() != ema.shadow.keys():
            raise CheckpointError(
                f"{path}: resume state averages other parameters; delete it to start this training over"
            )
        for name, value in averages.items():
            ema.shadow[name].copy_(value)
        if meta.ema_updates is None:
            raise CheckpointError(f"{path}: resume state records no ema_updates")
        ema.updates = meta.ema_updates
        if meta.grad_scaler:
            scaler.load_state_dict(meta.grad_scaler)
        for index, param in enumerate(_params(optimizer)):
            state = _strip(tensors, f"optim.{index}.")
            if state:
                optimizer.state[param] = {k: v.to(device) if k != "step" else v for k, v in state.items()}
        best_state = _strip(tensors, "best.")
        if best_state and meta.best_score is None:
            raise CheckpointError(f"{path}: resume state holds a best snapshot but no best_score")
        best = (meta.best_score, best_state) if best_state and meta.best_score is not None else None
        return step, best


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # SIGTERM: what schedulers send before they kill a job


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn Ctrl-C and SIGTERM into a flag read at step boundaries, so the state saved is a whole step's."""
    requested = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        requested["flag"] = True

    try:
        previous = {signum: signal.signal(signum, handler) for signum in _STOP_SIGNALS}
    except ValueError:  # not the main thread: interrupts cannot be deferred here
        yield lambda: False
        return
    try:
        yield lambda: requested["flag"]
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
