"""`dvc repro` against `ltsoups run` on the embedded default, each from a fresh clone: time, ratio, same bits.

    python benchmarks/dvc_repro_speed.py [--threads N] [--source REPO]

Clones the committed HEAD of REPO (default: this repository) twice into a temporary folder and runs, one
after the other, `ltsoups run` in the first and `dvc repro` in the second, each with its clone's code
(PYTHONPATH) and this interpreter's packages, MLflow logging to a sqlite store in its clone (as a user's
runs would) and the same torch threads. Prints the wall and CPU time of both (CPU time moves less with
other work on a shared machine), their ratios (goal: `dvc repro` at most 1.5x `ltsoups run`), the wall
time of every stage `dvc repro` ran (from a timing wrapper on PATH: the start-up of a stage process is
most of a short stage), the load average around each run, and whether both gave the same final weights
(sha256) and metrics; exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL = 1.5
# Stands in for `ltsoups` on the PATH dvc runs its stages with: runs the stage, then appends its wall time.
STAGE_TIMER = """#!{python}
import json, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call([{python!r}, "-m", "ltsoups", *sys.argv[1:]])
with open({log!r}, "a") as log:
    log.write(json.dumps({{"stage": " ".join(sys.argv[1:]), "seconds": time.perf_counter() - start}}) + "\\n")
sys.exit(code)
"""


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float
    load: tuple[float, float]
    """1-minute load average before and after"""


def timed(command: list[str], clone: Path, env: dict[str, str]) -> Timed:
    """Run ``command`` in ``clone``; its wall time and the CPU time of it and every process it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, cwd=clone, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, (load, os.getloadavg()[0]))


def clone(source: Path, target: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(source), str(target)], check=True)
    return target


def environment(clone: Path, threads: int, bin_dir: Path | None = None) -> dict[str, str]:
    """This interpreter's packages with the clone's code; MLflow in the clone; ``bin_dir`` first on PATH."""
    path = [str(bin_dir)] if bin_dir is not None else []
    path += [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": str(clone),
        "PATH": os.pathsep.join(path),
        "OMP_NUM_THREADS": str(threads),
        "MLFLOW_TRACKING_URI": f"sqlite:///{clone / 'mlflow.db'}",
    }


def results(clone: Path) -> tuple[str, str]:
    """The final weights' sha256 and the metrics file's text."""
    outputs = clone / "outputs"
    weights = hashlib.sha256((outputs / "final" / "final.safetensors").read_bytes()).hexdigest()
    return weights, (outputs / "eval" / "metrics.json").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--source", type=Path, default=REPO, help="the git repository to clone (its HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvc-repro-speed-") as tmp:
        folder = Path(tmp)
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        log = folder / "stages.jsonl"
        timer = bin_dir / "ltsoups"
        timer.write_text(STAGE_TIMER.format(python=sys.executable, log=str(log)))
        timer.chmod(0o755)
        one = clone(args.source, folder / "run")
        run = timed([sys.executable, "-m", "ltsoups", "run"], one, environment(one, args.threads))
        staged = clone(args.source, folder / "repro")
        repro = timed(["dvc", "repro"], staged, environment(staged, args.threads, bin_dir))
        same = results(one) == results(staged)
        stages = [json.loads(line) for line in log.read_text().splitlines()]
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=one, capture_output=True, text=True)
    print(f"commit {commit.stdout.strip()}, torch threads {args.threads}, cores {os.cpu_count()}")
    for name, result in (("ltsoups run", run), ("dvc repro", repro)):
        print(
            f"{name:>12}: {result.wall:6.1f} s wall, {result.cpu:6.1f} s CPU "
            f"(load average {result.load[0]:.1f} before, {result.load[1]:.1f} after)"
        )
    print("stages of dvc repro (wall s):")
    for stage in stages:
        print(f"  {stage['stage']:<28} {stage['seconds']:6.1f}")
    wall, cpu = repro.wall / run.wall, repro.cpu / run.cpu
    print(f"ratio dvc repro / ltsoups run: wall {wall:.2f}, CPU {cpu:.2f} (goal <= {GOAL})")
    print(f"same final weights and metrics: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
