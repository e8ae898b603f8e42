"""The safetensors reader as a parser of untrusted input: each malformed file is a CheckpointError naming it.

Files are built byte by byte; every reader of weights is tried on each, under an address-space limit
far below what the files claim, so a reader that allocated the claimed size before checking it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ltsoups.checkpoint import open_checkpoint, sidecar_path
from ltsoups.io.safetensors import (
    DTYPES,
    CheckpointError,
    TensorFileReader,
    TensorLayout,
    load_tensors,
    read_header,
    write_safetensors,
)


def safetensors_bytes(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """The format by hand: an 8-byte little-endian header length, the JSON header, the data section."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(encoded) if length is None else length) + encoded + data


def f32(begin: int, count: int = 2) -> dict:
    return {"dtype": "F32", "shape": [count], "data_offsets": [begin, begin + 4 * count]}


ENTRY = b'{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
TRILLION = [10**6, 10**6]


@dataclass(frozen=True)
class Malformed:
    name: str
    content: bytes
    expect: str


CASES = [
    Malformed("shorter than the length field", b"\x05\x00\x00", "file is truncated"),
    Malformed("no header after the length", struct.pack("<Q", 2), "file is truncated"),
    Malformed("a JSON array, not an object", safetensors_bytes(b"[1, 2]"), "not a safetensors file"),
    Malformed("header length past the file", safetensors_bytes(b"{}", length=1000), "header length 1000 runs past"),
    Malformed("header length of 2^60", safetensors_bytes(b"{}", length=2**60), "over the safetensors limit"),
    Malformed(
        "header length just over the limit", safetensors_bytes(b"{}", length=100_000_001), "over the safetensors limit"
    ),
    Malformed("header not UTF-8", safetensors_bytes(b'{"w\xff": ' + ENTRY + b"}", bytes(8)), "is not UTF-8"),
    Malformed("header not JSON", safetensors_bytes(b'{"w": }'), "header is not valid JSON"),
    Malformed("JSON after the header object", safetensors_bytes(b"{} {}"), "header is not valid JSON"),
    Malformed(
        "header nested without end",
        safetensors_bytes(b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "nested too deeply",
    ),
    Malformed(
        "a dimension of 5000 digits",
        safetensors_bytes(b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 8]}}'),
        "header is not valid JSON",
    ),
    Malformed(
        "duplicate tensor names",
        safetensors_bytes(b'{"w": ' + ENTRY + b', "w": ' + ENTRY + b"}", bytes(8)),
        "header names 'w' more than once",
    ),
    Malformed("entry not an object", safetensors_bytes({"w": 5}), "tensor 'w': expected an object with dtype"),
    Malformed(
        "entry without data_offsets",
        safetensors_bytes({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)),
        "tensor 'w': expected an object with dtype, shape and data_offsets",
    ),
    Malformed(
        "unknown dtype",
        safetensors_bytes({"w": {**f32(0), "dtype": "F128"}}, bytes(8)),
        "tensor 'w': unsupported dtype 'F128' (supported: F64, F32",
    ),
    Malformed(
        "a name of 100000 characters",
        safetensors_bytes({"n" * 100_000: {**f32(0), "dtype": "X"}}, bytes(8)),
        "unsupported dtype 'X'",
    ),
    Malformed(
        "negative dimension",
        safetensors_bytes({"w": {**f32(0), "shape": [-2]}}, bytes(8)),
        "shape must be a list of non-negative integers, got [-2]",
    ),
    Malformed(
        "fractional dimension",
        safetensors_bytes({"w": {**f32(0), "shape": [2.0]}}, bytes(8)),
        "shape must be a list of non-negative integers",
    ),
    Malformed(
        "boolean dimension",
        safetensors_bytes({"w": {**f32(0), "shape": [True, 2]}}, bytes(8)),
        "shape must be a list of non-negative integers",
    ),
    Malformed(
        "shape not a list",
        safetensors_bytes({"w": {**f32(0), "shape": 2}}, bytes(8)),
        "shape must be a list of non-negative integers",
    ),
    Malformed(
        "one data offset",
        safetensors_bytes({"w": {**f32(0), "data_offsets": [8]}}, bytes(8)),
        "data_offsets must be [begin, end], got [8]",
    ),
    Malformed(
        "negative data offset",
        safetensors_bytes({"w": {**f32(0), "data_offsets": [-8, 0]}}, bytes(8)),
        "data_offsets must be [begin, end]",
    ),
    Malformed(
        "data offsets reversed",
        safetensors_bytes({"w": {**f32(0), "data_offsets": [8, 0]}}, bytes(8)),
        "data_offsets [8, 0] end before they begin",
    ),
    Malformed(
        "dtype and shape larger than the offsets",
        safetensors_bytes({"w": {**f32(0), "shape": [3]}}, bytes(8)),
        "F32 of shape [3] takes 12 bytes, but its data_offsets [0, 8] hold 8",
    ),
    Malformed(
        "dtype and shape smaller than the offsets",
        safetensors_bytes({"w": {**f32(0), "dtype": "F16"}}, bytes(8)),
        "F16 of shape [2] takes 4 bytes",
    ),
    Malformed(
        "10^12 elements in 8 bytes",
        safetensors_bytes({"w": {**f32(0), "shape": TRILLION}}, bytes(8)),
        "F32 of shape [1000000, 1000000] takes 4000000000000 bytes, but its data_offsets [0, 8] hold 8",
    ),
    Malformed(
        "more bytes than 64-bit offsets address",
        safetensors_bytes({"w": {**f32(0), "shape": [2**40] * 3}}, bytes(8)),
        "takes more than 18446744073709551616 bytes",
    ),
    Malformed(
        "10^12 elements past the end",
        safetensors_bytes({"w": {"dtype": "F32", "shape": TRILLION, "data_offsets": [0, 4 * 10**12]}}, bytes(8)),
        "data_offsets [0, 4000000000000] run past the end of the data (8 bytes)",
    ),
    Malformed(
        "offsets past the end", safetensors_bytes({"w": f32(0)}, bytes(4)), "run past the end of the data (4 bytes)"
    ),
    Malformed(
        "overlapping tensors",
        safetensors_bytes({"a": f32(0), "b": f32(4)}, bytes(12)),
        "tensors 'a' and 'b' overlap (data bytes 4..8)",
    ),
    Malformed(
        "the same bytes for two tensors",
        safetensors_bytes({"a": f32(0), "b": f32(0)}, bytes(8)),
        "tensors 'a' and 'b' overlap",
    ),
    Malformed(
        "a gap between tensors",
        safetensors_bytes({"a": f32(0, 1), "b": f32(8, 1)}, bytes(12)),
        "data bytes 4..8 belong to no tensor",
    ),
    Malformed(
        "bytes after the last tensor",
        safetensors_bytes({"w": f32(0)}, bytes(12)),
        "data bytes 8..12 belong to no tensor",
    ),
    Malformed(
        "metadata values not strings",
        safetensors_bytes({"__metadata__": {"format": 1}, "w": f32(0)}, bytes(8)),
        "__metadata__ must map names to strings",
    ),
    Malformed(
        "metadata not an object",
        safetensors_bytes({"__metadata__": "pt", "w": f32(0)}, bytes(8)),
        "__metadata__ must map names to strings",
    ),
]


@contextmanager
def address_space_limit(extra_bytes: int = 2**30) -> Iterator[None]:
    """Allow this process at most ``extra_bytes`` more address space: a larger allocation fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = used + extra_bytes if hard == resource.RLIM_INFINITY else min(used + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _with_sidecar(path: Path) -> Path:
    """A sidecar whose sha256 matches: only the parser stands between the file and its use."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = {"kind": "member", "weights_sha256": digest, "num_tensors": 1, "num_parameters": 1, "code_version": "0"}
    sidecar_path(path).write_text(json.dumps(sidecar))
    return path


def _read_through_reader(path: Path) -> object:
    with TensorFileReader(path) as reader:
        return [reader.read(name) for name in reader.names()]


READERS: dict[str, Callable[[Path], object]] = {
    "read_header": read_header,
    "load_tensors": load_tensors,
    "TensorFileReader": _read_through_reader,
    "TensorLayout.of": TensorLayout.of,
    "open_checkpoint": lambda path: open_checkpoint(_with_sidecar(path)).load(),
}


def test_the_address_space_limit_stops_a_large_allocation() -> None:
    """The guard the table runs under does refuse an allocation of a claimed size."""
    with address_space_limit(), pytest.raises((MemoryError, RuntimeError)):
        torch.empty(4 * 10**12, dtype=torch.uint8)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_malformed_file_is_a_checkpoint_error_naming_it(case: Malformed, reader: str, tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(case.content)
    with address_space_limit(), pytest.raises(CheckpointError) as raised:
        READERS[reader](path)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert case.expect in message, message
    assert len(message) < 400, "a hostile header must not be echoed at length"


def test_the_table_covers_every_kind_of_damage_the_issue_names() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


# ------------------------------------------------------------------------------ what must still load


def _every_dtype() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    tensors = {code: (torch.randn(3, 2) * 50).to(dtype) for code, dtype in DTYPES.items()}
    tensors["scalar"] = torch.tensor(1.5)
    tensors["empty"] = torch.zeros(0, 4)
    return tensors


def test_files_the_safetensors_library_writes_read_back_bit_for_bit(tmp_path: Path) -> None:
    path = tmp_path / "library.safetensors"
    save_file(_every_dtype(), str(path), metadata={"format": "pt", "note": "written by safetensors"})
    ours, theirs = load_tensors(path), load_file(str(path))
    assert sorted(ours) == sorted(theirs)
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape, name
        assert ours[name].view(-1).view(torch.uint8).equal(tensor.view(-1).view(torch.uint8)), name


def test_files_we_write_read_back_through_both_readers(tmp_path: Path) -> None:
    path = tmp_path / "ours.safetensors"
    tensors = _every_dtype()
    write_safetensors(path, tensors)
    header = read_header(path)
    codes = {dtype: code for code, dtype in DTYPES.items()}
    assert header.data_start % 8 == 0
    assert {name: (entry.shape, entry.dtype) for name, entry in header.entries.items()} == {
        name: (tuple(tensor.shape), codes[tensor.dtype]) for name, tensor in tensors.items()
    }
    ours = load_tensors(path)
    for name, tensor in load_file(str(path)).items():
        assert torch.equal(ours[name], tensor) and torch.equal(tensor, tensors[name]), name


READS = {
    "nothing read": ([], []),
    "every tensor in order": ([0, 1, 2, 3, 4], []),
    "backwards": ([4, 3, 2, 1, 0], []),
    "every other tensor": ([0, 2, 4], []),
    "slices, one read twice": ([], [0, 2, 2, 5]),
}
"""Which tensors are read whole, in that order; then which element of every tensor is read, in that order."""


@pytest.mark.parametrize("order", sorted(READS))
def test_a_hashing_reader_gives_the_sha256_of_the_whole_file_whatever_it_read(order: str, tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    write_safetensors(path, {f"t{i}": torch.arange(6, dtype=torch.float32) * i for i in range(5)})
    whole, elements = READS[order]
    with TensorFileReader(path, hashing=True) as reader:
        for index in whole:
            reader.read(f"t{index}")
        for name in reader.names():
            for start in elements:
                reader.read_range(name, start, 1, torch.empty(4, dtype=torch.uint8))
        assert reader.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_hashing_reader_reads_nothing_twice_when_it_reads_the_file_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge reads a file written in name order front to back: only the header is read again to hash it."""
    path = tmp_path / "weights.safetensors"
    write_safetensors(path, {f"t{i}": torch.randn(1000) for i in range(4)})
    reread: list[int] = []
    pread = os.pread

    def counted(fd: int, size: int, offset: int) -> bytes:
        block = pread(fd, size, offset)
        reread.append(len(block))
        return block

    monkeypatch.setattr(os, "pread", counted)
    with TensorFileReader(path, hashing=True) as reader:
        for name in reader.names():
            reader.read(name)
        assert reader.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sum(reread) == read_header(path).data_start
