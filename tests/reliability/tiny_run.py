"""A tiny real run on disk for the reliability tests: its params, clones of it, and file-tree snapshots."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def clone_run(template: Path, dest: Path) -> Path:
    """A copy of ``template`` made of hard links: stages replace files atomically, so the template is safe.

    Tests that break a file must replace it (``rewrite``), never edit it in place.
    """
    shutil.copytree(template, dest, copy_function=os.link)
    return dest


def rewrite(path: Path, data: bytes) -> None:
    """Give ``path`` new bytes without touching other hard links to it."""
    path.unlink()
    path.write_bytes(data)


FileTree = dict[str, str]
_HASHES: dict[tuple[int, int, int, int], str] = {}


def _file_hash(path: Path) -> str:
    # Clones share inodes with the template, so an unchanged file is hashed once per session.
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[key]


def snapshot(root: Path) -> FileTree:
    """Every file and folder under ``root``: sha256 for files, 'dir' for folders."""
    return {
        str(path.relative_to(root)): "dir" if path.is_dir() else _file_hash(path) for path in sorted(root.rglob("*"))
    }


def tree_changes(before: FileTree, after: FileTree) -> list[str]:
    """Human-readable differences between two snapshots (created, removed, changed)."""
    created = [f"created {p}" for p in after if p not in before]
    removed = [f"removed {p}" for p in before if p not in after]
    changed = [f"changed {p}" for p in before if p in after and before[p] != after[p]]
    return created + removed + changed


class SimulatedCrash(BaseException):
    """Stands for a kill: a BaseException, so no `except Exception` on the way can swallow it."""


class CrashAtStep:
    """A TrainingObserver that crashes the run once ``step`` optimizer steps are done (before their save)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_start(self, total_steps: int, first_step: int) -> None:
        self.total, self.first = total_steps, first_step

    def on_step(self, step: int, loss: float, lr: float) -> None:
        if step == self.step:
            raise SimulatedCrash(f"crashed after step {step}")

    def on_validation(self, step: int, score: float) -> None:
        pass
