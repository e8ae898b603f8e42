"""Every image file of every split decoded once, in parallel, before any training: all bad files named at once.

A truncated or corrupt image would otherwise stop the first member that samples it, or, in the test
split, only `evaluate`, after every member, the merge and CR have run. Images a dataset holds in
memory (the embedded task, CIFAR) were decoded when it loaded: only `FileImages` are read here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ltsoups.data.dataset import DatasetSplits, FileImages

_CHUNK = 64
"""Images per task: few enough that the progress moves, many enough that scheduling costs nothing."""


class ImageCheckProgress(Protocol):
    """Follows the check: a progress bar in the CLI."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


class UnreadableImages(ValueError):
    """Image files that cannot be decoded, each named with why."""

    def __init__(self, problems: Sequence[str], checked: int) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"{len(self.problems)} of {checked:,} image files cannot be read; fix or remove them "
            f"(and the lines that name them) before training:\n{lines}"
        )


@dataclass(frozen=True)
class _Image:
    split: str
    source: FileImages
    index: int

    @property
    def path(self) -> Path:
        return self.source.paths[self.index]


def _files(splits: DatasetSplits) -> list[_Image]:
    """Each image file of the splits once (a file two splits share is read once), in split order."""
    seen: set[Path] = set()
    files = []
    for split, images in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if not isinstance(images.source, FileImages):
            continue
        for index, path in enumerate(images.source.paths):
            if path not in seen:
                seen.add(path)
                files.append(_Image(split, images.source, index))
    return files


def _problems(chunk: Sequence[_Image]) -> list[str]:
    found = []
    for item in chunk:
        try:
            item.source.image(item.index)  # what training reads: the file opened and decoded to RGB
        except OSError as err:  # FileImages raises OSError subclasses naming the file
            found.append(f"{item.split}: {err}")
    return found


def check_images(splits: DatasetSplits, progress: ImageCheckProgress | None = None, threads: int | None = None) -> int:
    """Decode every image file of ``splits`` once; raise `UnreadableImages` naming every one that fails.

    Returns how many files were read. ``threads`` defaults to the CPUs this process may use (PIL decodes
    without holding the GIL).
    """
    files = _files(splits)
    if progress is not None:
        progress.start(len(files))
    if not files:
        return 0
    chunks = [files[start : start + _CHUNK] for start in range(0, len(files), _CHUNK)]
    workers = threads or os.cpu_count() or 1
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
        for chunk, found in zip(chunks, pool.map(_problems, chunks), strict=True):
            problems.extend(found)
            if progress is not None:
                progress.advance(len(chunk))
    if problems:
        raise UnreadableImages(problems, len(files))
    return len(files)
