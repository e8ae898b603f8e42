"""Merge time against the time to read the inputs, and peak memory against one model, for 2/8/16 members.

Usage: python benchmarks/merge_speed.py [--layout vit|equal] [--width 384] [--members 2 8 16]
                                         [--methods uniform ties dare] [--cold] [--verify] [--threads 1]

Each (method, members) runs in a fresh process that first reads every input file once, tensor by tensor,
through the engine's reader (the physical floor of a merge: it must read them), then merges them and
writes the soup. It prints merge time / read time and the peak memory the merge adds (resident, and
anonymous: what is not page cache) / one model's float32 size. ``--cold`` evicts the inputs from the
page cache (posix_fadvise) before the read and before the merge, so both read from the disk.
``--verify`` merges as ``ltsoups merge`` does: every input is hashed as it is read (on a thread per
file) and checked against the sha256 its sidecar records before the soup is committed.

Layouts: ``vit`` has the tensors of a CLIP ViT image tower of ``--width`` (12 blocks; 384 is ViT-S/16,
22M parameters; 768 is ViT-B/16, 86M), whose largest tensor is 2.7% of the model; ``equal`` has ten
tensors of 10% each (the earlier benchmark's layout: the worst case for per-tensor merges, which hold
one tensor per input). ``uniform`` is the linear soup (a weighted sum, one input tensor held at a time);
``ties`` (density 0.2) and ``dare`` (p = 0.9) are per-tensor merges of the members with theta_0 as base.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ltsoups.checkpoint import save_checkpoint

CHILD = r"""
import json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[1]))
from ltsoups.checkpoint import CheckpointWriter, read_sidecar
from ltsoups.contracts import FactorGroup
from ltsoups.io.safetensors import TensorFileReader
from ltsoups.merging import MergeInputs
from ltsoups.plugins.task_vectors import DareMerger, DareParams, TiesMerger, TiesParams

method, cold, verify, out, theta0, *members = sys.argv[2:]
cold = cold == "cold"
paths = [Path(p) for p in (theta0, *members)]
inputs = paths if method != "uniform" else paths[1:]
recorded = {path: read_sidecar(path).weights_sha256 for path in inputs} if verify == "verify" else None

def evict():
    for path in inputs:
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

def kib(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))

def anonymous_kib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon:"))

if cold:
    evict()
start = time.perf_counter()
for path in inputs:
    with TensorFileReader(path) as reader:
        scratch = torch.empty(max(reader.nbytes(n) for n in reader.names()), dtype=torch.uint8)
        for name in reader.names():
            reader.read(name, scratch)
read_s = time.perf_counter() - start
del scratch
if cold:
    evict()
open("/proc/self/clear_refs", "w").write("5")  # resets the resident peak (VmHWM)
base_rss, base_anon, peak_anon = kib("VmRSS:"), anonymous_kib(), 0
import threading
done = threading.Event()
def watch():  # the kernel keeps no peak of anonymous memory: sample it
    global peak_anon
    while not done.is_set():
        peak_anon = max(peak_anon, anonymous_kib())
        done.wait(0.002)
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
start = time.perf_counter()
with MergeInputs.open(inputs, sha256=recorded) as merge_inputs:
    with CheckpointWriter(Path(out), merge_inputs.layout, "soup") as writer:
        if method == "uniform":
            merge_inputs.weighted_sums([[(p, 1 / len(inputs)) for p in inputs]], [writer])
        else:
            merger = TiesMerger(TiesParams(density=0.2)) if method == "ties" else DareMerger(DareParams(drop=0.9))
            merge_inputs.per_tensor(merger, paths[0], [FactorGroup(1, tuple(paths[1:]))], [writer])
merge_s = time.perf_counter() - start
done.set(); watcher.join()
peak_anon = max(peak_anon, anonymous_kib())
print(json.dumps({"read_s": read_s, "merge_s": merge_s, "rss": (kib("VmHWM:") - base_rss) * 1024,
                  "anon": (peak_anon - base_anon) * 1024}))
"""


def vit_shapes(width: int, blocks: int = 12, patch: int = 16, image: int = 224, out_dim: int = 512) -> dict:
    """The floating tensors of an open_clip ViT image tower (no text tower)."""
    tokens = (image // patch) ** 2 + 1
    shapes = {
        "conv1.weight": (width, 3, patch, patch),
        "class_embedding": (width,),
        "positional_embedding": (tokens, width),
        "ln_pre.weight": (width,),
        "ln_pre.bias": (width,),
        "ln_post.weight": (width,),
        "ln_post.bias": (width,),
        "proj": (width, out_dim),
    }
    for b in range(blocks):
        prefix = f"transformer.resblocks.{b}."
        shapes |= {
            prefix + "ln_1.weight": (width,),
            prefix + "ln_1.bias": (width,),
            prefix + "attn.in_proj_weight": (3 * width, width),
            prefix + "attn.in_proj_bias": (3 * width,),
            prefix + "attn.out_proj.weight": (width, width),
            prefix + "attn.out_proj.bias": (width,),
            prefix + "ln_2.weight": (width,),
            prefix + "ln_2.bias": (width,),
            prefix + "mlp.c_fc.weight": (4 * width, width),
            prefix + "mlp.c_fc.bias": (4 * width,),
            prefix + "mlp.c_proj.weight": (width, 4 * width),
            prefix + "mlp.c_proj.bias": (width,),
        }
    return shapes


def equal_shapes(params_millions: int) -> dict:
    return {f"layer{i}.weight": (1000, params_millions * 100) for i in range(10)}


def write_models(folder: Path, count: int, shapes: dict) -> list[Path]:
    """theta_0 and ``count`` members near it (member = theta_0 + a small random task vector)."""
    base = {
        name: torch.randn(shape, generator=torch.Generator().manual_seed(i))
        for i, (name, shape) in enumerate(shapes.items())
    }
    save_checkpoint(folder / "theta0.safetensors", base, kind="theta0")
    paths = [folder / "theta0.safetensors"]
    for index in range(count):
        generator = torch.Generator().manual_seed(1000 + index)
        member = {name: tensor + 0.01 * torch.randn(tensor.shape, generator=generator) for name, tensor in base.items()}
        paths.append(folder / f"member{index}.safetensors")
        save_checkpoint(paths[-1], member, kind="member")
    return paths


def measure(method: str, paths: list[Path], out: Path, cold: bool, verify: bool, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [
        sys.executable,
        "-c",
        CHILD,
        str(threads),
        method,
        "cold" if cold else "warm",
        "verify" if verify else "trust",
        str(out),
        *map(str, paths),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=["vit", "equal"], default="vit")
    parser.add_argument("--width", type=int, default=384, help="vit layout: the tower's width (768: ViT-B/16)")
    parser.add_argument("--params-millions", type=int, default=50, help="equal layout: the model's size")
    parser.add_argument("--members", type=int, nargs="+", default=[2, 8, 16])
    parser.add_argument(
        "--methods", nargs="+", choices=["uniform", "ties", "dare"], default=["uniform", "ties", "dare"]
    )
    parser.add_argument("--cold", action="store_true", help="read the inputs from the disk, not the page cache")
    parser.add_argument("--verify", action="store_true", help="hash the inputs as they are read, as the stage does")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the merge (and of the read)")
    args = parser.parse_args()
    shapes = vit_shapes(args.width) if args.layout == "vit" else equal_shapes(args.params_millions)
    model_bytes = 4 * sum(math.prod(shape) for shape in shapes.values())
    largest = 4 * max(math.prod(shape) for shape in shapes.values())
    with tempfile.TemporaryDirectory(dir=os.environ.get("LTSOUPS_BENCH_DIR")) as tmp:
        paths = write_models(Path(tmp), max(args.members), shapes)
        print(
            f"layout {args.layout}: {len(shapes)} tensors, one model = {model_bytes / 2**20:.0f} MiB float32, "
            f"largest tensor {100 * largest / model_bytes:.1f}% of it; {args.threads} thread(s), "
            f"{'cold' if args.cold else 'warm'} page cache{', inputs hashed as read' if args.verify else ''}"
        )
        columns = ("method", "members", "read s", "merge s", "time/read", "resident/model", "anon/model")
        widths = (8, 8, 8, 8, 10, 15, 11)
        header = " ".join(f"{column:>{width}}" for column, width in zip(columns, widths, strict=True))
        print(header)
        for method in args.methods:
            for count in args.members:
                inputs = paths[: count + 1]
                m = measure(method, inputs, Path(tmp) / "soup.safetensors", args.cold, args.verify, args.threads)
                ratios = (m["merge_s"] / m["read_s"], m["rss"] / model_bytes, m["anon"] / model_bytes)
                print(
                    f"{method:>8} {count:>8} {m['read_s']:>8.2f} {m['merge_s']:>8.2f} "
                    f"{ratios[0]:>10.2f} {ratios[1]:>15.2f} {ratios[2]:>11.2f}"
                )


if __name__ == "__main__":
    main()
