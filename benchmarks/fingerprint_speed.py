"""What the DVC `data` stage's fingerprint costs on a large tree, with and without its cache.

    python benchmarks/fingerprint_speed.py [--files 20000] [--kib 16]

Writes a tree of image-sized files (dated in the past, as a dataset on disk is), then times three
scans in the same run: the first (every file read and hashed: the baseline), a rescan of the
unchanged tree (sizes and mtimes only), and a rescan after 1% of the files changed. Prints the
times and their ratios to the first scan. Each scan gives the same digest for the same contents.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ltsoups.data.fingerprint import fingerprint_files

PAST_NS = 1_600_000_000 * 10**9


def write_tree(root: Path, files: int, size: int) -> list[Path]:
    paths = []
    for i in range(files):
        path = root / f"class_{i % 100:03d}" / f"{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        os.utime(path, ns=(PAST_NS, PAST_NS))
        paths.append(path)
    return paths


def timed(paths: list[Path], cache: Path) -> tuple[float, str, int]:
    start = time.perf_counter()
    found = fingerprint_files(paths, cache)
    return time.perf_counter() - start, found.sha256, found.read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--kib", type=int, default=16, help="size of each file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = write_tree(root / "data", args.files, args.kib * 1024)
        cache = root / "cache.json"
        first, digest, read = timed(paths, cache)
        assert read == len(paths)
        again, same, reread = timed(paths, cache)
        assert same == digest and reread == 0
        changed = paths[::100]
        for path in changed:
            path.write_bytes(os.urandom(args.kib * 1024))
            os.utime(path, ns=(PAST_NS + 10**9, PAST_NS + 10**9))
        after, other, read_after = timed(paths, cache)
        assert other != digest and read_after == len(changed)
    print(f"{args.files:,} files of {args.kib} KiB on {os.cpu_count()} cores")
    print(f"first scan (every file hashed):   {first:7.2f} s  1.000")
    print(f"unchanged tree (stat only):       {again:7.2f} s  {again / first:.3f}")
    print(f"{len(changed):,} files changed (1%):      {after:7.2f} s  {after / first:.3f}")


if __name__ == "__main__":
    main()
