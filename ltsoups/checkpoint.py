"""Checkpoints: safetensors weights plus a JSON sidecar (sha256, layout, provenance), verified on read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltsoups.io.atomic import atomic_path, write_json_atomic
from ltsoups.io.safetensors import CheckpointError, load_tensors, read_header, refuse_non_safetensors, write_safetensors
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
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint paths end in .safetensors, got {path}")
    contiguous = {name: tensor.detach().cpu() for name, tensor in tensors.items()}
    with atomic_path(path) as tmp:
        write_safetensors(tmp, contiguous)  # a full disk raises OSError, which atomic_path names
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
