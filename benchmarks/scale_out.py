"""Stage 1 on the `ray` runner: 2 workers of 1 thread against 1 worker, and wall time against the longest member.

    python benchmarks/scale_out.py [--workers 2] [--set KEY=VALUE ...]

Plans the embedded default (params.yaml, tracking off) in a temporary folder, builds theta_0, then
trains all its members twice through the ray runner, each time on a fresh local Ray cluster: one of 1 CPU
(one member at a time: the baseline) and one of --workers CPUs (a member per CPU), every member a task of
1 CPU and so 1 torch thread. The clock runs from submitting the members to the last result (cluster start
apart). Prints both wall times, the speedup (goal on 2 cores: >= 1.7), each run's longest member (from
its start on a worker to its result), the ratio of stage-1 wall time to that longest member (the paper's
claim: about 1 with a worker per member; with fewer workers, about members / workers), how many members
were in flight on average and how much slower each was than alone (a speedup short of the goal is one or
the other), whether both runs gave the same bits, and the load average around each run (on a shared
machine the numbers move with it).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from ltsoups.config import load_config
from ltsoups.contracts import Worker
from ltsoups.plugins.ray_runner import WORKER_SETUP_HOOK, RayRunner, RayRunnerParams
from ltsoups.runners.batch import member_tasks
from ltsoups.runners.task import SilentFollower
from ltsoups.stages.context import RunContext
from ltsoups.stages.member import MemberOutput
from ltsoups.stages.prepare import prepare
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.loop import TrainingObserver
from ltsoups.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
GOAL = 1.7


@dataclass
class MemberClock(SilentFollower):
    """When each member's (last) attempt started on a worker and when its result came back."""

    started_at: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        self.started_at[member] = time.perf_counter()
        return super().started(member, worker)

    def finished(self, member: str, output: MemberOutput) -> None:
        self.seconds[member] = time.perf_counter() - self.started_at[member]


@dataclass(frozen=True)
class StageOne:
    workers: int
    wall: float
    members: dict[str, float]
    digests: dict[str, str]
    load: tuple[float, float]


def train_on(workers: int, planned: Path, root: Path, overrides: list[str]) -> StageOne:
    shutil.copytree(planned, root)
    config = load_config(REPO / "params.yaml", [*overrides, f"workdir={root}"])
    context, workspace = RunContext(config), Workspace(root)
    tasks, _ = member_tasks(context, workspace)
    setup = {"worker_process_setup_hook": WORKER_SETUP_HOOK}  # as the runner starts its clusters
    ray.init(
        address="local", num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING, runtime_env=setup
    )
    try:
        clock, load_before = MemberClock(), os.getloadavg()[0]
        start = time.perf_counter()
        outputs = RayRunner(RayRunnerParams(num_cpus=1)).train(tasks, clock)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    digests = {o.job.member: hashlib.sha256(o.checkpoint.path.read_bytes()).hexdigest() for o in outputs}
    return StageOne(workers, wall, clock.seconds, digests, (load_before, os.getloadavg()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the parallel run's cluster")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="a config override (repeatable)")
    args = parser.parse_args()
    overrides = ["tracking.enabled=false", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        planned = Path(tmp) / "planned"
        context = RunContext(load_config(REPO / "params.yaml", [*overrides, f"workdir={planned}"]))
        prepare(context, Workspace(planned))
        build_theta0(context, Workspace(planned))
        runs = [train_on(workers, planned, Path(tmp) / f"w{workers}", overrides) for workers in (1, args.workers)]
    print(
        f"{len(runs[0].members)} members of the embedded default, 1 CPU (1 torch thread) each; {os.cpu_count()} cores"
    )
    for run in runs:
        longest = max(run.members, key=run.members.__getitem__)
        print(
            f"{run.workers} worker(s): stage 1 {run.wall:6.1f} s; members {sum(run.members.values()):6.1f} s in all, "
            f"longest {longest} {run.members[longest]:5.1f} s; wall / longest {run.wall / run.members[longest]:.2f}; "
            f"load average {run.load[0]:.2f} -> {run.load[1]:.2f}"
        )
    baseline, parallel = runs
    print(f"speedup {args.workers} workers / 1: {baseline.wall / parallel.wall:.2f} (goal >= {GOAL} on 2 cores)")
    # Why a speedup falls short: too few members at once (the runner), or each member slower (the machine).
    in_flight = sum(parallel.members.values()) / parallel.wall
    slowdown = sum(parallel.members.values()) / sum(baseline.members.values())
    print(f"members in flight on average: {in_flight:.2f}; each member took {slowdown:.2f}x its time alone")
    print(f"same bits in both runs: {'yes' if baseline.digests == parallel.digests else 'NO'}")


if __name__ == "__main__":
    main()
