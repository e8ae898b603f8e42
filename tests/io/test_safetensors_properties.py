"""The safetensors header parser on random input: it ends in a CheckpointError or in a valid object, never in a
crash, and never allocates what a header claims (every read runs under an address-space limit of 1 GiB more
than the process holds, far below the sizes the headers claim)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_io_safetensors import address_space_limit

from ltsoups.io.safetensors import DTYPES, CheckpointError, SafetensorsHeader, load_tensors, read_header

_U64 = 2**64 - 1
# Counts a header may claim: small ones, ones past any memory or past 2^64, and values of the wrong type.
_COUNTS = st.one_of(
    st.integers(0, 64),
    st.integers(2**30, 2**70),
    st.integers(-3, -1),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=2),
    st.none(),
)
_DTYPE_NAMES = st.one_of(st.sampled_from(sorted(DTYPES)), st.sampled_from(["F128", "f32", "", "BOOL "]))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
_ENTRY = st.one_of(
    st.fixed_dictionaries(
        {
            "dtype": _DTYPE_NAMES,
            "shape": st.one_of(st.lists(_COUNTS, max_size=4), _COUNTS),
            "data_offsets": st.one_of(st.lists(_COUNTS, min_size=2, max_size=2), st.lists(_COUNTS, max_size=3)),
        }
    ),
    _JSON,
)
_NAMES = st.text(max_size=6)


@st.composite
def _tiled(draw: st.DrawFn) -> tuple[dict, int]:
    """A well-formed header (tensors tiling the data section), then perhaps one entry's field replaced."""
    header: dict = {}
    offset = 0
    for name in draw(st.lists(_NAMES.filter(lambda n: n != "__metadata__"), max_size=4, unique=True)):
        dtype = draw(st.sampled_from(sorted(DTYPES)))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        size = math.prod(shape) * DTYPES[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if header and draw(st.booleans()):
        name = draw(st.sampled_from(sorted(header)))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[name][field] = draw(
            _ENTRY.map(lambda entry: entry[field] if isinstance(entry, dict) and field in entry else entry)
        )
    return header, offset + draw(st.sampled_from([0, 0, -1, 1, 4096]))


@st.composite
def _files(draw: st.DrawFn) -> bytes:
    """A safetensors file: a length field (right, or any u64), a header, a data section of some length."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))  # any bytes at all
    if draw(st.booleans()):
        header, data_size = draw(_tiled())
    else:
        header, data_size = draw(st.dictionaries(_NAMES, _ENTRY, max_size=4)), draw(st.integers(0, 64))
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.one_of(st.dictionaries(_NAMES, st.text(max_size=3), max_size=2), _JSON))
    encoded = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(encoded)), st.integers(0, _U64)))
    return struct.pack("<Q", length) + encoded + bytes(max(data_size, 0))


def _tiles(header: SafetensorsHeader, file_size: int) -> bool:
    entries = sorted(header.entries.values(), key=lambda entry: (entry.begin, entry.end))
    covered = 0
    for entry in entries:
        if entry.begin != covered or entry.nbytes != math.prod(entry.shape) * DTYPES[entry.dtype].itemsize:
            return False
        covered = entry.end
    return header.data_start + covered == file_size


def _check_header(path: Path) -> None:
    assert _tiles(read_header(path), path.stat().st_size)


def _check_tensors(path: Path) -> None:
    header = read_header(path)
    assert _tiles(header, path.stat().st_size)
    entries = header.entries
    tensors = load_tensors(path)
    assert set(tensors) == set(entries)
    for name, tensor in tensors.items():
        assert (tuple(tensor.shape), tensor.dtype) == (entries[name].shape, DTYPES[entries[name].dtype])


@pytest.mark.parametrize("check", [_check_header, _check_tensors], ids=["read_header", "load_tensors"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=_files())
def test_a_random_file_is_a_checkpoint_error_or_a_valid_checkpoint(
    check: Callable[[Path], None], content: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    with address_space_limit():
        try:
            check(path)
        except CheckpointError as err:
            assert str(err).startswith(f"{path}"), err
