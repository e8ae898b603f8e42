"""Checkpoints: safetensors weights plus a JSON sidecar, written atomically, verified on read.

Nothing here ever unpickles: a file that is not safetensors is refused before it is parsed.
"""

from __future__ import annotations

import glob
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

from ltsoups.provenance import code_version, hash_file

SIDECAR_SUFFIX = ".json"
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class CheckpointError(ValueError):
    """A checkpoint is missing, not safetensors, or does not match its sidecar."""


def sidecar_path(weights: Path) -> Path:
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


def _file_mode() -> int:
    # mkstemp creates files readable by their owner only; outputs get the mode open() would give them.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def _write_error(target: Path, err: OSError) -> OSError:
    if err.errno is None:
        return OSError(f"cannot write {target}: {err}")
    return OSError(err.errno, f"cannot write {target}: {err.strerror}")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it only if the block succeeds.

    A failed write (no space, no permission) leaves neither the temporary nor a changed ``target``,
    and the OSError names ``target``. Temporaries a killed writer left beside ``target`` are removed
    once it is written.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise _write_error(target, err) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
    except OSError as err:
        raise _write_error(target, err) from err
    finally:
        tmp_path.unlink(missing_ok=True)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)


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


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write the safetensors format one tensor at a time, so no second copy of the model is built."""
    codes = {dtype: code for code, dtype in _DTYPES.items()}
    header: dict[str, Any] = {}
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if tensor.dtype not in codes:
            raise CheckpointError(f"tensor {name!r}: dtype {tensor.dtype} cannot be saved")
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": codes[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned, as the format asks
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for name in sorted(tensors):
            flat = tensors[name].contiguous().reshape(-1)
            if flat.numel():
                handle.write(memoryview(flat.view(torch.uint8).numpy()))


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


class TensorFileReader:
    """Reads single tensors of a safetensors file with plain reads (no mmap), so memory is freed as it goes."""

    def __init__(self, path: Path) -> None:
        refuse_non_safetensors(path)
        self.path = path
        self._handle = open(path, "rb")  # noqa: SIM115 - closed in close()
        (header_size,) = struct.unpack("<Q", self._handle.read(8))
        header = json.loads(self._handle.read(header_size))
        header.pop("__metadata__", None)
        self._entries = header
        self._data_start = 8 + header_size

    def names(self) -> list[str]:
        return sorted(self._entries)

    def layout(self, name: str) -> tuple[tuple[int, ...], str]:
        entry = self._entries[name]
        return tuple(entry["shape"]), entry["dtype"]

    def nbytes(self, name: str) -> int:
        begin, end = self._entries[name]["data_offsets"]
        return end - begin

    def read(self, name: str, scratch: torch.Tensor | None = None) -> torch.Tensor:
        """The tensor ``name``; with a uint8 ``scratch`` buffer it is a view into it (no allocation)."""
        entry = self._entries[name]
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise CheckpointError(f"{self.path}: tensor {name!r} has unsupported dtype {entry['dtype']}")
        size = self.nbytes(name)
        buffer = torch.empty(size, dtype=torch.uint8) if scratch is None else scratch[:size]
        self._handle.seek(self._data_start + entry["data_offsets"][0])
        if size and self._handle.readinto(memoryview(buffer.numpy())) != size:
            raise CheckpointError(f"{self.path}: tensor {name!r} is truncated")
        return buffer.view(dtype).reshape(entry["shape"])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> TensorFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TensorLayout:
    """Names, shapes and dtypes of a checkpoint's tensors, read from its header only."""

    entries: dict[str, tuple[tuple[int, ...], str]]

    @classmethod
    def of(cls, path: Path) -> TensorLayout:
        with TensorFileReader(path) as reader:
            return cls({name: reader.layout(name) for name in reader.names()})

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
