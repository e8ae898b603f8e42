"""Checkpoints: safetensors weights plus a JSON sidecar, written atomically, verified on read.

Nothing here ever unpickles: a file that is not safetensors is refused before it is parsed.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltsoups.provenance import code_version, hash_file

SIDECAR_SUFFIX = ".json"
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}


class CheckpointError(ValueError):
    """A checkpoint is missing, not safetensors, or does not match its sidecar."""


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: Path, value: Any) -> None:
    write_text_atomic(target, json.dumps(value, indent=2, sort_keys=True) + "\n")


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
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint paths end in .safetensors, got {path}")
    contiguous = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp))
        weights_sha256 = hash_file(tmp)
    sidecar = {
        "kind": kind,
        "weights_sha256": weights_sha256,
        "num_tensors": len(contiguous),
        "num_parameters": int(sum(t.numel() for t in contiguous.values())),
        "code_version": code_version(),
        **provenance,
    }
    write_json_atomic(sidecar_path(path), sidecar)
    return Checkpoint(path, sidecar)


def refuse_non_safetensors(path: Path) -> None:
    """Raise unless ``path`` is an existing file whose bytes start like a safetensors file."""
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: {path.suffix} files are pickles, which ltsoups never loads; convert the weights to safetensors"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        raise CheckpointError(f"{path}: file is truncated (not a safetensors file)")
    (header_size,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_size > path.stat().st_size:
        raise CheckpointError(f"{path}: not a safetensors file (pickles and other formats are refused)")


def open_checkpoint(path: Path, expect_kind: str | None = None) -> Checkpoint:
    """Check format, sidecar and sha256 of a checkpoint before anything uses it."""
    path = Path(path)
    refuse_non_safetensors(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: sidecar {side.name} is missing")
    try:
        sidecar = json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{side}: sidecar is not valid JSON ({err})") from err
    actual = hash_file(path)
    if sidecar.get("weights_sha256") != actual:
        raise CheckpointError(
            f"{path}: sha256 {actual[:12]}... does not match its sidecar "
            f"({str(sidecar.get('weights_sha256'))[:12]}...): the file is truncated or was altered"
        )
    if expect_kind is not None and sidecar.get("kind") != expect_kind:
        raise CheckpointError(f"{path}: expected a {expect_kind!r} checkpoint, sidecar says {sidecar.get('kind')!r}")
    return Checkpoint(path, sidecar)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    refuse_non_safetensors(path)
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118


@dataclass(frozen=True)
class TensorLayout:
    """Names, shapes and dtypes of a checkpoint's tensors, read from its header only."""

    entries: dict[str, tuple[tuple[int, ...], str]]

    @classmethod
    def of(cls, path: Path) -> TensorLayout:
        refuse_non_safetensors(path)
        with safe_open(str(path), framework="pt") as handle:
            entries = {}
            for name in handle.keys():  # noqa: SIM118
                piece = handle.get_slice(name)
                entries[name] = (tuple(piece.get_shape()), str(piece.get_dtype()))
        return cls(entries)

    def first_mismatch(self, other: TensorLayout) -> str | None:
        """A sentence naming the first difference from ``other``, or None when they agree."""
        for name in sorted(set(self.entries) | set(other.entries)):
            mine, theirs = self.entries.get(name), other.entries.get(name)
            if mine is None:
                return f"unexpected tensor {name!r}"
            if theirs is None:
                return f"tensor {name!r} is missing"
            if mine[0] != theirs[0]:
                return f"tensor {name!r} has shape {list(theirs[0])}, expected {list(mine[0])}"
            if mine[1] != theirs[1]:
                return f"tensor {name!r} has dtype {theirs[1]}, expected {mine[1]}"
        return None
