"""The processes of a local Ray cluster, written down while its driver lives, so that a later run stops what a
killed driver left running.

``ray.shutdown()`` stops the cluster a run started; a driver killed with SIGKILL never calls it, and the
cluster's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) outlive it. Each driver writes the
cluster's processes (pid and start time, so that a reused pid is never taken for one) to a marker file
named after itself; the next run that starts a local cluster stops the processes of every marker whose
driver is gone. Linux only (it reads /proc); elsewhere nothing is written or stopped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
from pathlib import Path

from ltsoups.io.atomic import write_json_atomic

log = logging.getLogger("ltsoups.runners")
PROC = Path("/proc")
Process = tuple[int, int]
"""(pid, start time in clock ticks since boot)."""


def markers() -> Path:
    return Path(tempfile.gettempdir()) / f"ltsoups-ray-{os.getuid()}"


def record_cluster(session_dir: str) -> Path | None:
    """Write down this driver and the processes of the cluster it started (those of ``session_dir`` and their
    children); the marker's path, to remove once the cluster is shut down."""
    me = _process(os.getpid())
    if me is None:
        return None
    marker = markers() / f"{os.getpid()}.json"
    write_json_atomic(marker, {"driver": me, "session_dir": session_dir, "processes": _cluster(session_dir)})
    return marker


def stop_abandoned() -> list[int]:
    """Stop the processes of every recorded cluster whose driver is gone; their pids."""
    stopped: list[int] = []
    folder = markers()
    if not PROC.is_dir() or not folder.is_dir():
        return stopped
    for marker in folder.glob("*.json"):
        try:
            record = json.loads(marker.read_text())
            driver, processes = tuple(record["driver"]), [tuple(p) for p in record["processes"]]
        except (OSError, ValueError, KeyError, TypeError):
            marker.unlink(missing_ok=True)  # unreadable: its driver wrote it half (atomic writes make that rare)
            continue
        if _process(driver[0]) == driver:
            continue  # its driver lives: the cluster is in use
        for pid, started in processes:
            if _process(pid) == (pid, started):
                try:
                    os.kill(pid, signal.SIGKILL)
                    stopped.append(pid)
                except OSError:  # ended meanwhile, or another user's
                    pass
        marker.unlink(missing_ok=True)
    if stopped:
        log.warning("stopped %d process(es) of a local Ray cluster whose driver was killed", len(stopped))
    return stopped


def _cluster(session_dir: str) -> list[Process]:
    """The processes started for ``session_dir`` (their command line names it) and all their descendants."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    queue = [pid for pid in children.get(os.getpid(), []) if session_dir in _command(pid)]
    found: list[Process] = []
    while queue:
        pid = queue.pop()
        process = _process(pid)
        if process is not None:
            found.append(process)
        queue += children.get(pid, [])
    return found


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _process(pid: int) -> Process | None:
    fields = _stat(pid)
    return None if fields is None else (pid, int(fields[19]))


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def _command(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
