"""Our safetensors reader against the `safetensors` library's: what each refuses, and what each costs.

    .venv/bin/python benchmarks/safetensors_reader.py [--mib 256] [--repeats 3]

1. Every malformed file of tests/io/test_io_safetensors.py (CASES), read by both under an address-space
   limit of 1 GiB more than the process holds: refused (the error type) or accepted (tensors returned).
2. A checkpoint of --mib MiB (float32 tensors of 256 Ki elements): wall time to parse the header, and to load
   every tensor and sum it, and the peak RSS (VmHWM) of a fresh process doing only that, for each reader.
3. A file truncated while each reader holds it open: an error naming the file, or a crash (exit status).
Ratios are ours / the library's, measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cases() -> list:
    spec = importlib.util.spec_from_file_location("malformed", ROOT / "tests" / "io" / "test_io_safetensors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["malformed"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return [(case, module.address_space_limit) for case in module.CASES]


def _outcome(read, path: Path, limit) -> str:
    try:
        with limit():
            read(path)
    except Exception as err:  # which type each reader raises is the point
        return f"refused ({type(err).__name__})"
    return "ACCEPTED"


def malformed_table() -> None:
    from safetensors.torch import load_file

    from ltsoups.io.safetensors import load_tensors

    print("| malformed file | ours | safetensors.torch.load_file |\n|---|---|---|")
    differ = 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.safetensors"
        for case, limit in _cases():
            path.write_bytes(case.content)
            ours, theirs = _outcome(load_tensors, path, limit), _outcome(load_file, path, limit)
            differ += ours != theirs and "ACCEPTED" in (ours, theirs)
            print(f"| {case.name} | {ours} | {theirs} |")
    print(f"\ncases one reader accepts and the other refuses: {differ}")


_CHILD = """
import sys, time
from pathlib import Path
path, reader, part = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if reader == "ours":
    from ltsoups.io.safetensors import load_tensors, read_header
    header = lambda: read_header(path).entries
    load = lambda: load_tensors(path)
else:
    from safetensors import safe_open
    from safetensors.torch import load_file
    def header():
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    load = lambda: load_file(str(path))
started = time.perf_counter()
result = {"header": header, "load": load}.get(part, dict)()
if part == "load":
    total = sum(float(t.sum()) for t in result.values())  # every byte read (a mapped file's pages come in)
seconds = time.perf_counter() - started
with open("/proc/self/status") as status:  # the high-water mark of this process (ru_maxrss survives exec)
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(seconds, peak)
"""


def _measure(path: Path, reader: str, part: str, repeats: int) -> tuple[float, int]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), reader, part], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[0]), int(out[1])))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def cost_table(mib: int, repeats: int) -> None:
    import torch

    from ltsoups.io.safetensors import write_safetensors

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.safetensors"
        write_safetensors(path, {f"t{i:03d}": torch.randn(1 << 18) for i in range(mib)})
        baseline = _measure(path, "theirs", "baseline", 1)  # an import of both libraries, nothing read
        print(f"\n{mib} MiB checkpoint, best of {repeats} fresh processes (baseline RSS {baseline[1] / 2**20:.0f} MiB)")
        print("| step | ours (s) | safetensors (s) | ratio | ours peak RSS (MiB) | safetensors peak RSS (MiB) |")
        print("|---|---|---|---|---|---|")
        for part in ("header", "load"):
            ours, theirs = _measure(path, "ours", part, repeats), _measure(path, "theirs", part, repeats)
            print(
                f"| {part} | {ours[0]:.4f} | {theirs[0]:.4f} | {ours[0] / theirs[0]:.2f} | "
                f"{ours[1] / 2**20:.0f} | {theirs[1] / 2**20:.0f} |"
            )


_TRUNCATED = """
import os, sys, torch
from pathlib import Path
from safetensors import safe_open
from ltsoups.io.safetensors import TensorFileReader, write_safetensors
path = Path(sys.argv[1])
write_safetensors(path, {f"t{i}": torch.ones(1 << 20) for i in range(8)})
if sys.argv[2] == "ours":
    with TensorFileReader(path) as reader:
        os.truncate(path, 4096)
        reader.read("t7")
else:
    with safe_open(str(path), framework="pt") as handle:
        os.truncate(path, 4096)
        handle.get_tensor("t7")
"""


def truncated_while_open() -> None:
    """A file cut short while a reader holds it open (another process rewriting it in place)."""
    print("\n| reader of a file truncated while open | exit status | last line of stderr |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for reader in ("ours", "theirs"):
            path = Path(folder) / f"{reader}.safetensors"
            done = subprocess.run([sys.executable, "-c", _TRUNCATED, str(path), reader], capture_output=True, text=True)
            last = (done.stderr.strip().splitlines() or ["(none)"])[-1]
            print(f"| {reader} | {done.returncode} | {last[:110]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    malformed_table()
    truncated_while_open()
    cost_table(args.mib, args.repeats)


if __name__ == "__main__":
    main()
