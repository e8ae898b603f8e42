"""One digest of a dataset's files, cheap on large trees: a file whose size and mtime are those the cache
recorded keeps its recorded content hash; only new and changed files are read, in parallel threads."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ltsoups.io.atomic import write_text_atomic
from ltsoups.provenance import hash_file

CACHE_FORMAT = 1
# A file written this close to the scan may change again within the same mtime tick (git's "racy" files):
# its hash is kept for the next comparison but not trusted as unchanged.
RACY_NS = 2_000_000_000
CHUNK = 256
"""Files per thread task: few enough futures for millions of files, small enough to keep threads busy."""


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class FilesFingerprint:
    """The digest of the files' paths and contents, and what changed since the cached scan."""

    sha256: str
    files: int
    bytes: int
    read: int
    """Files whose content was hashed this time (new, or size or mtime changed)."""
    added: int
    removed: int
    modified: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.modified)


def fingerprint_files(paths: Iterable[Path], cache: Path, workers: int | None = None) -> FilesFingerprint:
    """Fingerprint ``paths`` (each once, in sorted order), using and then rewriting the cache file ``cache``."""
    ordered = sorted({str(path) for path in paths})
    known = read_cache(cache)
    started = time.time_ns()
    chunks = [ordered[i : i + CHUNK] for i in range(0, len(ordered), CHUNK)]
    with ThreadPoolExecutor(max_workers=workers or min(32, 4 * (os.cpu_count() or 1))) as pool:
        states = [state for chunk in pool.map(lambda names: _states(names, known), chunks) for state in chunk]
    current = dict(zip(ordered, states, strict=True))
    digest = hashlib.sha256()
    for name, state in current.items():
        digest.update(f"{len(name)}:{name}:{state.sha256}\n".encode())
    _write_cache(cache, current, started)
    reused = [name for name in ordered if known.get(name) == current[name]]
    return FilesFingerprint(
        sha256=digest.hexdigest(),
        files=len(current),
        bytes=sum(state.size for state in current.values()),
        read=len(ordered) - len(reused),
        added=len(current.keys() - known.keys()),
        removed=len(known.keys() - current.keys()),
        modified=sum(1 for name in current.keys() & known.keys() if current[name].sha256 != known[name].sha256),
    )


def _states(names: Sequence[str], known: dict[str, FileState]) -> list[FileState]:
    return [_state(name, known.get(name)) for name in names]


def _state(name: str, cached: FileState | None) -> FileState:
    try:
        stat = os.stat(name)
    except FileNotFoundError:
        raise FileNotFoundError(f"dataset file not found: {name}") from None
    if cached is not None and (cached.size, cached.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return cached
    return FileState(stat.st_size, stat.st_mtime_ns, hash_file(Path(name)))


def read_cache(cache: Path) -> dict[str, FileState]:
    """The cached states; none when the file is missing or not one we wrote (it is only a cache)."""
    try:
        raw = json.loads(cache.read_text(encoding="utf-8"))
        if raw.get("format") != CACHE_FORMAT:
            return {}
        return {name: FileState(int(size), int(mtime), str(sha)) for name, (size, mtime, sha) in raw["files"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _write_cache(cache: Path, states: dict[str, FileState], started_ns: int) -> None:
    def entry(state: FileState) -> list[int | str]:
        trusted = state.mtime_ns < started_ns - RACY_NS
        return [state.size, state.mtime_ns if trusted else -1, state.sha256]

    files = {name: entry(state) for name, state in states.items()}
    write_text_atomic(cache, json.dumps({"format": CACHE_FORMAT, "files": files}, separators=(",", ":")) + "\n")
