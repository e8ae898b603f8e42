"""Peak memory of a streaming merge versus the number of members (target: about one model).

Usage: python benchmarks/merge_memory.py [--params-millions 50] [--members 2 8 16]
Prints, per member count, the peak resident memory added by the merge as a ratio of one model's size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ltsoups.checkpoint import save_checkpoint


def write_members(folder: Path, count: int, params_millions: int) -> list[Path]:
    paths = []
    for index in range(count):
        generator = torch.Generator().manual_seed(index)
        tensors = {f"layer{i}.weight": torch.randn(1000, params_millions * 100, generator=generator) for i in range(10)}
        path = folder / f"member{index}.safetensors"
        save_checkpoint(path, tensors, kind="member")
        paths.append(path)
    return paths


def measure(paths: list[Path], out: Path) -> int:
    """Peak resident memory (bytes) a fresh process adds while it merges ``paths`` uniformly."""
    # Linux: writing 5 to clear_refs resets the peak (VmHWM), so the peak measured is the merge's own.
    code = (
        "import sys; from pathlib import Path; from ltsoups.merging import merge_weighted\n"
        "def kib(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
        "paths = [Path(p) for p in sys.argv[2:]]\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = kib('VmRSS:')\n"
        "merge_weighted([(p, 1 / len(paths)) for p in paths], Path(sys.argv[1]))\n"
        "print(kib('VmHWM:') - base)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(out), *map(str, paths)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip()) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params-millions", type=int, default=50)
    parser.add_argument("--members", type=int, nargs="+", default=[2, 8, 16])
    args = parser.parse_args()
    model_bytes = args.params_millions * 1_000_000 * 4
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_members(folder, max(args.members), args.params_millions)
        print(f"model: {args.params_millions}M float32 parameters = {model_bytes / 2**20:.0f} MiB")
        print(f"{'members':>8} {'peak added (MiB)':>17} {'ratio to one model':>19}")
        for count in args.members:
            peak = measure(paths[:count], folder / f"soup{count}.safetensors")
            print(f"{count:>8} {peak / 2**20:>17.0f} {peak / model_bytes:>19.2f}")


if __name__ == "__main__":
    main()
