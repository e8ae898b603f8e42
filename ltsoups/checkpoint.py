"""Checkpoints: safetensors weights plus a JSON sidecar (sha256, layout, provenance), verified on read."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltsoups.io.atomic import atomic_path, write_json_atomic
from ltsoups.io.safetensors import (
    CheckpointError,
    SafetensorsWriter,
    TensorLayout,
    dtype_code,
    load_tensors,
    read_header,
    refuse_non_safetensors,
)
from ltsoups.provenance import code_version, hash_file

SIDECAR_SUFFIX = ".json"


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint on disk: where its weights are and what its sidecar says."""

    path: Path
    sidecar: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.sidecar.get("kind", ""))

    def load(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.path)


def save_checkpoint(path: Path, tensors: Mapping[str, torch.Tensor], kind: str, **provenance: Any) -> Checkpoint:
    """Write ``tensors`` to ``path`` (safetensors) and its sidecar, each atomically.

    ``provenance`` (config hash, manifest hash, ...) goes into the sidecar with the weights' sha256,
    the tensor layout and the code version.
    """
    layout = TensorLayout({name: (tuple(t.shape), dtype_code(name, t.dtype)) for name, t in tensors.items()})
    with CheckpointWriter(path, layout, kind, **provenance) as writer:
        for name in writer.order:
            writer.write(name, tensors[name])
    return writer.checkpoint


def refuse_non_finite(path: Path, name: str, tensor: torch.Tensor, consequence: str) -> None:
    """A CheckpointError naming ``path`` and ``name`` when a floating-point ``tensor`` holds a NaN or an infinity.

    Weights that diverged load and score like any others: they are refused where they are written and read.
    """
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values; {consequence}")


class CheckpointWriter:
    """A checkpoint written tensor by tensor, its layout known up front (how merges stream their output).

    The weights and the sidecar replace ``path`` when the ``with`` block ends without an error; an error
    leaves ``path`` as it was. ``checkpoint`` is the written checkpoint once the block has ended.
    """

    def __init__(self, path: Path, layout: TensorLayout, kind: str, **provenance: Any) -> None:
        if path.suffix != ".safetensors":
            raise CheckpointError(f"checkpoint paths end in .safetensors, got {path}")
        self.path, self.layout, self.order = path, layout, sorted(layout.entries)
        self._kind, self._provenance = kind, provenance
        self._stack = ExitStack()
        self._writer: SafetensorsWriter | None = None
        self._checkpoint: Checkpoint | None = None

    def __enter__(self) -> CheckpointWriter:
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))  # a full disk raises OSError, which atomic_path names
            handle = stack.enter_context(open(tmp, "wb"))
            self._writer = SafetensorsWriter(handle, self.layout)
            self._stack = stack.pop_all()
        return self

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """The next tensor of ``order``, in the shape and dtype of the layout."""
        refuse_non_finite(self.path, name, tensor, "nothing was written")
        self._open().write(name, tensor)

    def write_part(self, name: str, part: torch.Tensor) -> None:
        """The next elements of the tensor being written, flattened (see `SafetensorsWriter.write_part`)."""
        refuse_non_finite(self.path, name, part, "nothing was written")
        self._open().write_part(name, part)

    def _open(self) -> SafetensorsWriter:
        if self._writer is None:
            raise RuntimeError(f"{self.path}: written to outside the CheckpointWriter's with block")
        return self._writer

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self._stack.__exit__(exc_type, exc, tb)
            return
        with self._stack:  # closes the file, then atomic_path fsyncs and renames it
            weights_sha256 = self._open().finish()
        entries = self.layout.entries.values()
        sidecar = {
            "kind": self._kind,
            "weights_sha256": weights_sha256,
            "num_tensors": len(self.layout.entries),
            "num_parameters": int(sum(math.prod(shape) for shape, _ in entries)),
            "code_version": code_version(),
            **self._provenance,
        }
        write_json_atomic(sidecar_path(self.path), sidecar)
        self._checkpoint = Checkpoint(self.path, sidecar)

    @property
    def checkpoint(self) -> Checkpoint:
        if self._checkpoint is None:
            raise RuntimeError(f"{self.path} is written only when its CheckpointWriter block ends")
        return self._checkpoint


def open_checkpoint(path: Path, expect_kind: str | None = None) -> Checkpoint:
    """Check format, sidecar, sha256 and the whole header of a checkpoint before anything uses it."""
    path = Path(path)
    refuse_non_safetensors(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: sidecar {side.name} is missing")
    try:
        sidecar = json.loads(side.read_bytes().decode("utf-8"))
    except ValueError as err:  # not UTF-8, or not JSON
        raise CheckpointError(f"{side}: sidecar is not valid JSON ({err})") from err
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"{side}: sidecar must be a JSON object")
    actual = hash_file(path)
    if sidecar.get("weights_sha256") != actual:
        raise CheckpointError(
            f"{path}: sha256 {actual[:12]}... does not match its sidecar "
            f"({str(sidecar.get('weights_sha256'))[:12]}...): the file is truncated or was altered"
        )
    # A sidecar can vouch for a malformed file (one written by hand, or by another tool): parse it now.
    read_header(path)
    if expect_kind is not None and sidecar.get("kind") != expect_kind:
        raise CheckpointError(f"{path}: expected a {expect_kind!r} checkpoint, sidecar says {sidecar.get('kind')!r}")
    return Checkpoint(path, sidecar)
