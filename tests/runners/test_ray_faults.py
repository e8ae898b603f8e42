"""Ray failing under the runner, on real local clusters the runner starts: a killed ``ray::DashboardAgent`` ends the
batch in a clear error, and the cluster of a driver killed with SIGKILL is stopped by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from member_runs import Probe, Run

from ltsoups.contracts import MemberFailed, Worker
from ltsoups.plugins.ray_runner import RayRunner, RayRunnerParams
from ltsoups.runners.batch import train_members
from ltsoups.runners.local_cluster import stop_abandoned
from ltsoups.stages.context import RunContext

ray = pytest.importorskip("ray", reason="the ray runner's tests need Ray: pip install 'ltsoups[ray]'")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")]

AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def descendants(root: int) -> dict[int, str]:
    """The processes below ``root``, by pid: their command lines."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, queue = {}, [root]
    while queue:
        parent = queue.pop()
        for pid in [pid for pid, of in parents.items() if of == parent]:
            try:
                found[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            queue.append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def test_a_killed_dashboard_agent_ends_the_batch_in_a_clear_error(
    planned_run: Run, tmp_path: Path, one_thread: None
) -> None:
    assert not ray.is_initialized()
    run = planned_run.clone(tmp_path / "run")
    killed: list[int] = []

    def kill_the_agent(member: str, worker: Worker, attempt: int, step: int) -> None:
        if not killed:
            agent = next(pid for pid, command in descendants(os.getpid()).items() if command == AGENTS[0])
            os.kill(agent, signal.SIGKILL)
            killed.append(agent)

    runner = RayRunner(RayRunnerParams(cluster_cpus=1, max_retries=0))
    config = run.config("train.schedule.min_steps=200")
    with pytest.raises(MemberFailed) as failed:
        train_members(RunContext(config), run.workspace, ["f1-r0"], runner, Probe(on_step=kill_the_agent))
    assert killed
    message = str(failed.value)
    # The relay actor dies with the node (RayClusterFailed), or the member's worker is found dead first.
    assert "f1-r0" in message and ("the Ray cluster failed" in message or "member f1-r0 failed" in message), message
    assert "Error: " in message  # the Ray error's type and first line, not a traceback
    assert run.member_digests() == {} and not ray.is_initialized()


DRIVER = textwrap.dedent(
    """
    import time
    from ltsoups.plugins.ray_runner import RayRunner, RayRunnerParams
    with RayRunner(RayRunnerParams(cluster_cpus=1))._connected():
        print("connected", flush=True)
        time.sleep(600)
    """
)


def test_the_cluster_of_a_killed_driver_is_stopped_by_the_next_run(tmp_path: Path) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert driver.stdout is not None and driver.stdout.readline() == "connected\n"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            agents = [pid for pid, command in descendants(driver.pid).items() if command in AGENTS]
            if len(agents) == len(AGENTS):
                break
            time.sleep(0.2)
        assert len(agents) == len(AGENTS)
    finally:
        driver.kill()
        driver.wait()
    time.sleep(2)
    assert all(alive(pid) for pid in agents), "Ray now stops the agents of a killed driver: this cleanup may go"
    stopped = stop_abandoned()
    assert set(agents) <= set(stopped)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in agents) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in agents)
