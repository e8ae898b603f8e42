"""The dataset fingerprint: content digests, read again only where size or mtime changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ltsoups.data.fingerprint import fingerprint_files, read_cache

PAST_NS = 1_600_000_000 * 10**9  # files dated 2020: not written in the same mtime tick as any scan


def write(path: Path, content: bytes, mtime_ns: int = PAST_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> list[Path]:
    return [write(tmp_path / "data" / f"{name}.png", name.encode() * 100) for name in ("a", "b", "c")]


def test_a_second_scan_reads_no_file_and_gives_the_same_digest(tree: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    first = fingerprint_files(tree, cache)
    assert (first.files, first.bytes, first.read, first.added) == (3, 300, 3, 3)
    second = fingerprint_files(reversed(tree), cache)
    assert (second.sha256, second.read, second.changed) == (first.sha256, 0, False)


def test_a_touched_file_is_read_again_and_changes_nothing(tree: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    first = fingerprint_files(tree, cache)
    os.utime(tree[1], ns=(PAST_NS + 10**9, PAST_NS + 10**9))
    touched = fingerprint_files(tree, cache)
    assert (touched.sha256, touched.read, touched.changed) == (first.sha256, 1, False)


@pytest.mark.parametrize("change", ["modify", "add", "remove", "rename"])
def test_a_changed_tree_changes_the_digest(tree: list[Path], tmp_path: Path, change: str) -> None:
    cache = tmp_path / "cache.json"
    first = fingerprint_files(tree, cache)
    files = list(tree)
    if change == "modify":  # same size, new content
        write(tree[0], b"z" * 100, PAST_NS + 10**9)
    elif change == "add":
        files.append(write(tmp_path / "data" / "d.png", b"d"))
    elif change == "remove":
        files.pop()
    else:
        files[0] = write(tmp_path / "data" / "renamed.png", tree[0].read_bytes())
    after = fingerprint_files(files, cache)
    assert after.sha256 != first.sha256 and after.changed
    expected = {"modify": (0, 0, 1), "add": (1, 0, 0), "remove": (0, 1, 0), "rename": (1, 1, 0)}[change]
    assert (after.added, after.removed, after.modified) == expected


def test_a_file_written_during_the_scan_tick_is_not_trusted(tmp_path: Path) -> None:
    # Rewritten within the same mtime tick, a file keeps its size and mtime: only re-reading sees the change.
    image = tmp_path / "a.png"
    image.write_bytes(b"a" * 10)
    stamp = image.stat().st_mtime_ns
    cache = tmp_path / "cache.json"
    first = fingerprint_files([image], cache)
    write(image, b"b" * 10, stamp)
    assert fingerprint_files([image], cache).sha256 != first.sha256


def test_a_missing_file_is_named(tree: list[Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dataset file not found: .*gone\.png"):
        fingerprint_files([*tree, tmp_path / "gone.png"], tmp_path / "cache.json")


def test_a_damaged_cache_only_costs_reading_again(tree: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    first = fingerprint_files(tree, cache)
    cache.write_text('{"format": 1, "files": {"x": [1]}}')
    assert read_cache(cache) == {}
    again = fingerprint_files(tree, cache)
    assert (again.sha256, again.read) == (first.sha256, 3)
