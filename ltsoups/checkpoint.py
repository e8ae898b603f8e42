"""Checkpoints: safetensors weights plus a JSON sidecar (sha256, layout, provenance), verified on read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from ltsoups.classifier_spec import ClassifierSpec
from ltsoups.io.atomic import atomic_path, write_text_atomic
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
SIDECAR_VERSION = 2
"""1: the previous release's sidecars (no version field); 2: config hashes of what changes the bits only, and
soups that record the hashes of theta_0 and of every member they were merged from."""


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MergeInput(_Record):
    """One input of a merge as the soup's sidecar lists it: theta_0 (its role), a member (its factor), or a
    checkpoint of a weighted sum (its weight)."""

    path: str
    role: str | None = None
    factor: int | None = None
    weight: float | None = None


class SearchRecord(_Record):
    """What `merge --search` chose, on which validation metric; every soup it scored is in ``grid``."""

    chosen: dict[str, JsonValue]
    metric: str
    grid: str
    mode: str | None = None
    """lambda-n or per-factor; None: written before the per-factor mode (lambda-n)"""
    lambdas: list[float] | None = None
    """the lambda of every factor the running soups fold with"""
    cost: dict[str, int] | None = None
    """factor merges, folds and validation passes of the search"""


class Sidecar(_Record):
    """Everything a checkpoint's JSON sidecar may say: what every sidecar says of its weights, then what
    each kind records of what produced it (None where a kind does not record it).

    Sidecars written by the previous release (``sidecar_version`` 1) read as they are.
    """

    kind: str
    weights_sha256: str
    num_tensors: int | None = None
    num_parameters: int | None = None
    code_version: str | None = None
    """always written; a sidecar written by hand (a test's, another tool's) may leave them out"""
    sidecar_version: int = 1
    config_sha256: str | None = None
    """the config sections that decide the weights (see `ltsoups.stages.sections`)"""
    # theta0
    backbone: dict[str, JsonValue] | None = None
    class_names: list[str] | None = None
    head_scale: float | None = None
    # member (and final: steps, best_val_balanced)
    member: str | None = None
    factor: int | None = None
    replica: int | None = None
    subset_size: int | None = None
    steps: int | None = None
    best_val_balanced: float | None = None
    seed: int | None = None
    manifest_sha256: str | None = None
    theta0_sha256: str | None = None
    """member and soup: the weights of the theta_0 they start from"""
    # soup
    inputs: list[MergeInput] | None = None
    upto_factor: int | None = None
    selection: dict[str, JsonValue] | None = None
    search: SearchRecord | None = None
    merger: dict[str, JsonValue] | None = None
    fold_lora: bool | None = None
    members_sha256: dict[str, str] | None = None
    """member id -> weights of every member the merge was given (a selecting merger may use fewer)"""
    # final
    retrained: bool | None = None
    head_init: str | None = None
    soup_sha256: str | None = None
    # resume-state
    step: int | None = None
    ema_updates: int | None = None
    grad_scaler: dict[str, JsonValue] | None = None
    best_score: float | None = None
    fingerprint: str | None = None
    # predictions
    samples: int | None = None
    classes: int | None = None
    split: str | None = None
    dataset: str | None = None
    model_weights_sha256: str | None = None
    prediction_config_sha256: str | None = None
    members_weights_sha256: list[str] | None = None
    # pretrained-backbone (and predictions: model)
    model: str | None = None
    config: dict[str, JsonValue] | None = None
    zero_shot: dict[str, JsonValue] | None = None
    contrastive_loss: dict[str, float] | None = None
    torch_threads: int | None = None
    classifier: ClassifierSpec | None = None
    """what rebuilds the model without its run (theta0, member, soup, final)"""

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"


def read_sidecar(path: Path) -> Sidecar:
    """The sidecar of the weights at ``path``, parsed; the weights are not read (`open_checkpoint` checks them)."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{path}: sidecar {side.name} is missing")
    try:
        return Sidecar.model_validate_json(side.read_bytes())
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "top level"
        raise CheckpointError(f"{side}: not a checkpoint sidecar ({where}: {problem['msg']})") from err


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint on disk: where its weights are and what its sidecar says."""

    path: Path
    sidecar: Sidecar

    @property
    def kind(self) -> str:
        return self.sidecar.kind

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
    # A NaN or an infinity makes the sum non-finite, and summing is ten times faster than isfinite: the
    # exact test runs only when the sum is not finite (then there is one, or the sum overflowed).
    if not tensor.is_floating_point() or math.isfinite(float(tensor.sum())):
        return
    if not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values; {consequence}")


def refuse_altered(path: Path, recorded_sha256: str, sha256: str) -> None:
    """A CheckpointError naming ``path`` when the sha256 of its bytes is not the one its sidecar records."""
    if sha256 != recorded_sha256:
        raise CheckpointError(
            f"{path}: sha256 {sha256[:12]}... does not match its sidecar "
            f"({recorded_sha256[:12]}...): the file is truncated or was altered"
        )


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
        sidecar = Sidecar(
            kind=self._kind,
            weights_sha256=weights_sha256,
            num_tensors=len(self.layout.entries),
            num_parameters=int(sum(math.prod(shape) for shape, _ in entries)),
            code_version=code_version(),
            sidecar_version=SIDECAR_VERSION,
            **self._provenance,
        )
        write_text_atomic(sidecar_path(self.path), sidecar.to_json())
        self._checkpoint = Checkpoint(self.path, sidecar)

    @property
    def checkpoint(self) -> Checkpoint:
        if self._checkpoint is None:
            raise RuntimeError(f"{self.path} is written only when its CheckpointWriter block ends")
        return self._checkpoint


def open_checkpoint(path: Path, expect_kind: str | None = None, hash_now: bool = True) -> Checkpoint:
    """Check format, sidecar, sha256 and the whole header of a checkpoint before anything uses it.

    ``hash_now=False``: for a reader that hashes the file as it reads it and checks the sidecar's sha256
    before what it read is used (`MergeInputs`); a file whose header does not parse is hashed now, so a
    damaged file is still named as one.
    """
    path = Path(path)
    refuse_non_safetensors(path)
    sidecar = read_sidecar(path)
    if hash_now:
        refuse_altered(path, sidecar.weights_sha256, hash_file(path))
    # A sidecar can vouch for a malformed file (one written by hand, or by another tool): parse it now.
    try:
        read_header(path)
    except CheckpointError:
        refuse_unlike_sidecar(path, sidecar.weights_sha256)
        raise
    if expect_kind is not None and sidecar.kind != expect_kind:
        raise CheckpointError(f"{path}: expected a {expect_kind!r} checkpoint, sidecar says {sidecar.kind!r}")
    return Checkpoint(path, sidecar)


def refuse_unlike_sidecar(path: Path, recorded_sha256: str) -> None:
    """For a weights file that does not parse: refuse it as `open_checkpoint` does, as no safetensors file
    first, then as not the bytes its sidecar records (the caller raises its own error if neither)."""
    refuse_non_safetensors(path)
    refuse_altered(path, recorded_sha256, hash_file(path))
