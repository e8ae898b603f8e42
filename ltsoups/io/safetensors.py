"""The safetensors format, read with plain reads (no mmap) and parsed as the untrusted input it is.

Every reader of weights goes through one header parser, `read_header`, which checks the whole header
(its length, encoding, names, dtypes, shapes and offsets) before a byte of tensor data is read or a
buffer sized by it is allocated. Nothing here unpickles: pickle suffixes and files that do not start
like safetensors are refused before they are parsed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import reprlib
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from ltsoups.io.paths import obstacle

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")
_ADDRESSABLE = 2**64  # offsets in the format are u64: no tensor can take more bytes
_SHORT = reprlib.Repr()  # a hostile header is quoted in messages, never echoed at length
_SHORT.maxstring, _SHORT.maxother = 120, 120
DTYPES = {
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
    """A weights file is missing, not safetensors, malformed, or does not match its sidecar."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it; ``begin`` and ``end`` are offsets into the data section."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: every entry fits the data section, and the entries tile it exactly."""

    entries: dict[str, TensorEntry]
    data_start: int
    """Where the data section starts in the file."""


def refuse_non_safetensors(path: Path) -> None:
    """Raise unless ``path`` is an existing file whose first bytes start a safetensors header.

    A cheap check of the first bytes only (pickles never pass it); `read_header` checks the rest.
    """
    with _open_weights(path) as handle:
        _header_length(path, handle)


def read_header(path: Path) -> SafetensorsHeader:
    """The validated header of ``path``; a CheckpointError naming the file says what is wrong with it."""
    with _open_weights(path) as handle:
        return _parse_header(path, handle)


def _open_weights(path: Path) -> IO[bytes]:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: {path.suffix} files are pickles, which ltsoups never loads; convert the weights to safetensors"
        )
    if not path.is_file():
        problem = obstacle(path)
        raise CheckpointError(f"checkpoint not found: {path}" if problem is None else f"cannot read {path}: {problem}")
    return open(path, "rb")


def _header_length(path: Path, handle: IO[bytes]) -> tuple[int, int]:
    """The header's length from the first bytes, checked against the format's limit; and the file's size."""
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    head = handle.read(9)
    if len(head) < 9:
        raise CheckpointError(f"{path}: file is truncated (not a safetensors file)")
    (length,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{":
        raise CheckpointError(f"{path}: not a safetensors file (pickles and other formats are refused)")
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{path}: header length {length} is over the safetensors limit of {MAX_HEADER_BYTES} bytes "
            "(a damaged or non-safetensors file)"
        )
    if 8 + length > size:
        raise CheckpointError(
            f"{path}: header length {length} runs past the end of the file ({size} bytes): truncated or damaged"
        )
    return length, size


class _DuplicateName(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a name given twice is an error, not a silent "last one wins"."""
    names: set[str] = set()
    for name, _ in pairs:
        if name in names:
            raise _DuplicateName(name)
        names.add(name)
    return dict(pairs)


def _parse_header(path: Path, handle: IO[bytes]) -> SafetensorsHeader:
    length, size = _header_length(path, handle)
    handle.seek(8)
    raw = handle.read(length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(
            f"{path}: header is not UTF-8 (byte {raw[err.start]:#04x} at file offset {8 + err.start})"
        ) from err
    try:
        # It starts with "{", so whatever parses is a JSON object.
        parsed: dict[str, Any] = json.loads(text, object_pairs_hook=_unique_names)
    except _DuplicateName as err:
        raise CheckpointError(f"{path}: header names {_SHORT.repr(err.name)} more than once") from err
    except RecursionError as err:
        raise CheckpointError(f"{path}: header is nested too deeply to be a safetensors header") from err
    except ValueError as err:  # JSONDecodeError, and integers too long to convert
        raise CheckpointError(f"{path}: header is not valid JSON ({err})") from err
    metadata = parsed.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise CheckpointError(f"{path}: __metadata__ must map names to strings, got {_SHORT.repr(metadata)}")
    data_size = size - 8 - length
    entries = {name: _entry(f"{path}: tensor {_SHORT.repr(name)}", value, data_size) for name, value in parsed.items()}
    _check_tiling(path, entries, data_size)
    return SafetensorsHeader(entries, 8 + length)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(where: str, value: object, data_size: int) -> TensorEntry:
    if not isinstance(value, dict) or any(key not in value for key in _ENTRY_KEYS):
        raise CheckpointError(
            f"{where}: expected an object with dtype, shape and data_offsets, got {_SHORT.repr(value)}"
        )
    dtype, shape, offsets = (value[key] for key in _ENTRY_KEYS)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(f"{where}: unsupported dtype {_SHORT.repr(dtype)} (supported: {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise CheckpointError(f"{where}: shape must be a list of non-negative integers, got {_SHORT.repr(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(n) for n in offsets)):
        raise CheckpointError(f"{where}: data_offsets must be [begin, end], got {_SHORT.repr(offsets)}")
    begin, end = offsets
    if begin > end:
        raise CheckpointError(f"{where}: data_offsets [{begin}, {end}] end before they begin")
    if end > data_size:
        raise CheckpointError(
            f"{where}: data_offsets [{begin}, {end}] run past the end of the data ({data_size} bytes): "
            "the file is truncated or damaged"
        )
    nbytes = _byte_count(shape, DTYPES[dtype].itemsize)
    if nbytes != end - begin:
        claimed = f"{nbytes} bytes" if nbytes is not None else f"more than {_ADDRESSABLE} bytes"
        raise CheckpointError(
            f"{where}: {dtype} of shape {_SHORT.repr(shape)} takes {claimed}, "
            f"but its data_offsets [{begin}, {end}] hold {end - begin}"
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def _byte_count(shape: list[int], itemsize: int) -> int | None:
    """The bytes of ``shape``, or None past 2^64: a hostile shape cannot make this slow."""
    if 0 in shape:
        return 0
    total = itemsize
    for n in shape:
        total *= n
        if total > _ADDRESSABLE:
            return None
    return total


def _check_tiling(path: Path, entries: Mapping[str, TensorEntry], data_size: int) -> None:
    """The tensors' bytes cover the data section exactly once: no overlaps, no gaps, nothing after them."""
    covered, previous = 0, ""
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin < covered:
            raise CheckpointError(
                f"{path}: tensors {_SHORT.repr(previous)} and {_SHORT.repr(name)} overlap "
                f"(data bytes {entry.begin}..{covered})"
            )
        if entry.begin > covered:
            raise CheckpointError(f"{path}: data bytes {covered}..{entry.begin} belong to no tensor")
        covered, previous = entry.end, name
    if covered != data_size:
        raise CheckpointError(f"{path}: data bytes {covered}..{data_size} belong to no tensor")


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``path``, read after its header is validated."""
    with TensorFileReader(path) as reader:
        return {name: reader.read(name) for name in reader.names()}


class TensorFileReader:
    """Reads single tensors of a safetensors file with plain reads (no mmap), so memory is freed as it goes."""

    def __init__(self, path: Path, hashing: bool = False) -> None:
        """``hashing``: the file's sha256 is computed from the bytes read (`sha256`)."""
        self.path = path
        self._handle = _open_weights(path)
        try:
            self._header = _parse_header(path, self._handle)
        except BaseException:
            self._handle.close()
            raise
        self._digest = _ReadDigest(path, self._handle) if hashing else None

    def names(self) -> list[str]:
        return sorted(self._header.entries)

    def layout(self, name: str) -> tuple[tuple[int, ...], str]:
        entry = self._header.entries[name]
        return entry.shape, entry.dtype

    def nbytes(self, name: str) -> int:
        return self._header.entries[name].nbytes

    def read(self, name: str, scratch: torch.Tensor | None = None) -> torch.Tensor:
        """The tensor ``name``; with a uint8 ``scratch`` buffer it is a view into it (no allocation)."""
        entry = self._header.entries[name]
        buffer = torch.empty(entry.nbytes, dtype=torch.uint8) if scratch is None else scratch[: entry.nbytes]
        self._read_into(name, self._header.data_start + entry.begin, buffer)
        return buffer.view(DTYPES[entry.dtype]).reshape(entry.shape)

    def read_range(self, name: str, start: int, count: int, scratch: torch.Tensor) -> torch.Tensor:
        """Elements ``start`` to ``start + count`` of tensor ``name`` (flattened), as a view into ``scratch``.

        A merge reads every input a slice at a time, so the slices of all its inputs fit in the CPU cache.
        """
        entry = self._header.entries[name]
        dtype = DTYPES[entry.dtype]
        begin, nbytes = start * dtype.itemsize, count * dtype.itemsize
        if start < 0 or count < 0 or begin + nbytes > entry.nbytes:
            raise ValueError(f"{self.path}: elements {start}..{start + count} are outside tensor {_SHORT.repr(name)}")
        buffer = scratch[:nbytes]
        self._read_into(name, self._header.data_start + entry.begin + begin, buffer)
        return buffer.view(dtype)

    def _read_into(self, name: str, offset: int, buffer: torch.Tensor) -> None:
        if not buffer.numel():
            return
        data = memoryview(buffer.numpy())
        self._handle.seek(offset)
        # The header was checked against the file's size; a short read means it shrank since.
        if self._handle.readinto(data) != len(data):
            raise CheckpointError(f"{self.path}: tensor {_SHORT.repr(name)} is truncated")
        if self._digest is not None:
            self._digest.read(offset, data)

    def sha256(self) -> str:
        """The sha256 of the whole file (a reader opened with ``hashing``): of the bytes read, and of the rest."""
        if self._digest is None:
            raise ValueError(f"{self.path}: opened without hashing")
        return self._digest.hexdigest()

    def close(self) -> None:
        if self._digest is not None:
            self._digest.close()
        self._handle.close()

    def __enter__(self) -> TensorFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HASH_BLOCK = 1 << 18
_HASH_QUEUE = 2
"""Blocks read but not hashed yet, per file: the reads run at most about 1 MiB ahead of the hash."""


class _ReadDigest:
    """The sha256 of a file, fed the bytes its reader reads and computed on a thread of its own, beside
    the reader's work (hashlib lets go of the GIL while it hashes).

    A file read front to back (a merge reads a file written in sorted-name order so) is hashed without a
    byte read twice; bytes the reads skip, and those after the last read, are read here when needed.
    """

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self._path, self._fd = path, handle.fileno()
        self._sha256 = hashlib.sha256()
        self._hashed = 0
        """bytes 0.._hashed of the file are queued to be hashed"""
        self._hex: str | None = None
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=_HASH_QUEUE)
        self._thread = threading.Thread(target=self._hash_blocks, name=f"sha256 {path.name}", daemon=True)
        self._thread.start()

    def _hash_blocks(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._sha256.update(block)

    def read(self, offset: int, data: memoryview) -> None:
        """``data`` was read from ``offset``."""
        end = offset + len(data)
        if self._hex is not None or end <= self._hashed:
            return
        self._hash_up_to(offset)
        for start in range(self._hashed - offset, len(data), _HASH_BLOCK):
            self._blocks.put(bytes(data[start : start + _HASH_BLOCK]))  # a copy: the reader reuses its buffer
        self._hashed = end

    def hexdigest(self) -> str:
        if self._hex is None:
            self._hash_up_to(None)
            self.close()
            self._hex = self._sha256.hexdigest()
        return self._hex

    def close(self) -> None:
        """Stop the hashing thread once it has hashed what was queued."""
        if self._thread.is_alive():
            self._blocks.put(None)
            self._thread.join()

    def _hash_up_to(self, offset: int | None) -> None:
        """Hash the bytes up to ``offset`` (None: the end of the file), read here."""
        while offset is None or self._hashed < offset:
            size = _HASH_BLOCK if offset is None else min(_HASH_BLOCK, offset - self._hashed)
            block = os.pread(self._fd, size, self._hashed)
            if not block:
                if offset is None:
                    return
                raise CheckpointError(f"{self._path}: the file shrank while it was read")
            self._blocks.put(block)
            self._hashed += len(block)


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> str:
    """Write the safetensors format one tensor at a time, so no second copy of the model is built; its sha256."""
    layout = TensorLayout({name: (tuple(t.shape), dtype_code(name, t.dtype)) for name, t in tensors.items()})
    with open(path, "wb") as handle:
        writer = SafetensorsWriter(handle, layout)
        for name in writer.order:
            writer.write(name, tensors[name])
        return writer.finish()


def dtype_code(name: str, dtype: torch.dtype) -> str:
    """The format's name of ``dtype`` (``F32``, ...); a CheckpointError naming the tensor if it has none."""
    code = _CODES.get(dtype)
    if code is None:
        raise CheckpointError(f"tensor {name!r}: dtype {dtype} cannot be saved")
    return code


_CODES = {dtype: code for code, dtype in DTYPES.items()}


class SafetensorsWriter:
    """Streams a safetensors file whose layout is known up front: the header first, then each tensor in
    ``order`` (sorted names), so a merge can write its output while it computes it. Hashes what it writes."""

    def __init__(self, handle: IO[bytes], layout: TensorLayout) -> None:
        self._handle, self._layout = handle, layout
        self.order = sorted(layout.entries)
        header: dict[str, Any] = {}
        offset = 0
        for name in self.order:
            shape, code = layout.entries[name]
            size = math.prod(shape) * DTYPES[code].itemsize
            header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned, as the format asks
        self._digest = hashlib.sha256()
        self._put(struct.pack("<Q", len(encoded)))
        self._put(encoded)
        self._next, self._written = 0, 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """The next tensor of ``order``, whole, with the shape and dtype the layout gave it."""
        shape = self._layout.entries[name][0] if name in self._layout.entries else None
        if shape is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"tensor {name!r}: shape {list(tensor.shape)} does not fit its layout's {list(shape)}")
        if self._written:
            raise ValueError(f"tensor {name!r} is already being written in parts")
        self.write_part(name, tensor.reshape(-1))

    def write_part(self, name: str, part: torch.Tensor) -> None:
        """The next elements of the tensor being written (flattened, in order); the tensor is done when full."""
        if self._next >= len(self.order) or self.order[self._next] != name:
            expected = self.order[self._next] if self._next < len(self.order) else "nothing more"
            raise ValueError(f"safetensors writer: got tensor {name!r}, expected {expected!r}")
        shape, code = self._layout.entries[name]
        dtype = DTYPES[code]
        total = math.prod(shape)
        if part.dtype != dtype or self._written + part.numel() > total:
            raise ValueError(
                f"tensor {name!r}: {part.numel()} more {part.dtype} elements do not fit its layout "
                f"({code}, {total} elements, {self._written} written)"
            )
        flat = part.detach().cpu().contiguous().reshape(-1)
        if flat.numel():
            self._put(memoryview(flat.view(torch.uint8).numpy()))
        self._written += flat.numel()
        if self._written == total:
            self._next, self._written = self._next + 1, 0

    def finish(self) -> str:
        """The sha256 of the file written; raises if a tensor of the layout was never written."""
        if self._next != len(self.order):
            raise ValueError(f"safetensors writer: tensor {self.order[self._next]!r} was never written")
        return self._digest.hexdigest()

    def _put(self, data: bytes | memoryview) -> None:
        self._handle.write(data)
        self._digest.update(data)


@dataclass(frozen=True)
class TensorLayout:
    """Names, shapes and dtypes of a checkpoint's tensors, read from its header only."""

    entries: dict[str, tuple[tuple[int, ...], str]]

    @classmethod
    def of(cls, path: Path) -> TensorLayout:
        entries = read_header(path).entries
        return cls({name: (entries[name].shape, entries[name].dtype) for name in sorted(entries)})

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
