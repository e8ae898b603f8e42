"""Wall time of the whole LT-Soups method on the embedded default (`ltsoups run`), on this machine.

Usage: python benchmarks/embedded_run.py [--threads N]
Runs in a temporary folder with the repository's params.yaml and tracking off, and prints the wall
time, the time per member and the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 300  # the embedded default must run in at most 5 minutes on 2 CPU cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (OMP_NUM_THREADS)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "outputs"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        command = [
            sys.executable,
            "-m",
            "ltsoups",
            "run",
            "--params",
            str(REPO / "params.yaml"),
            "--set",
            "tracking.enabled=false",
            "--set",
            f"workdir={workdir}",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        members = len(json.loads((workdir / "plan" / "plan.json").read_text())["members"])
        metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    print(f"threads: {args.threads}, cores: {os.cpu_count()}")
    print(f"wall time of `ltsoups run`: {seconds:.1f} s ({members} members, {seconds / members:.1f} s per member)")
    print(f"ratio to the {BUDGET_SECONDS // 60}-minute budget: {seconds / BUDGET_SECONDS:.2f}")
    for name, scores in metrics.items():
        print(
            f"{name:>10}: balanced {scores['balanced']:.2f}  "
            + "  ".join(f"{group} {scores[group]:.2f}" for group in ("many", "medium", "few") if group in scores)
        )


if __name__ == "__main__":
    main()
