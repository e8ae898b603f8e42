"""One writer per output: a lock file beside it, taken without waiting; a busy output names the process holding it.

The lock is an ``flock`` on ``.<name>.lock`` beside the output, which the kernel releases when its
process ends however it ends (a ``kill -9`` included): a dead writer's lock file is taken over by the
next writer, without a pid to check. The file records its holder (pid, host, command, start time) for
the message the next writer gets while the holder lives. A process may take a lock it already holds
(a stage inside `ltsoups run`, a member trained in the driver's process).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ltsoups.io.paths import check_output

log = logging.getLogger("ltsoups.io")
_MAX_COMMAND = 300


class OutputLocked(OSError):
    """Another process is writing the output."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    started: str

    @classmethod
    def this_process(cls) -> Holder:
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else sys.executable
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
        return cls(os.getpid(), socket.gethostname(), command[:_MAX_COMMAND], started)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} (`{self.command}`, since {self.started})"


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


@dataclass
class _Held:
    fd: int | None
    depth: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


@contextmanager
def writing(target: Path, *also: Path) -> Iterator[None]:
    """Hold ``target``'s lock for the block; ``also``: the other files written under it (a sidecar).

    Raises, before any work, ``OutputLocked`` naming the holder when another process holds it, and an
    OSError naming what is in the way when a directory or a link loop stands where an output belongs.
    """
    for path in (target, *also):
        check_output(path)
    key = Path(os.path.abspath(lock_path(target)))
    with _guard:
        held = _held.get(key)
        if held is None:
            held = _held[key] = _Held(_acquire(key, target), 0)
        held.depth += 1
    try:
        yield
    finally:
        with _guard:
            held.depth -= 1
            if held.depth == 0:
                del _held[key]
                _release(key, held.fd)


def _acquire(path: Path, target: Path) -> int | None:
    """The descriptor holding ``path``'s flock; None where the filesystem has no locks (then nothing is held)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputLocked(
                f"{target} is being written by another process: {holder}. Wait for it to end or stop it; "
                f"the lock ({path}) goes with that process"
            ) from None
        except OSError as err:  # a filesystem without flock (some network mounts)
            os.close(fd)
            log.warning("cannot lock %s (%s): nothing stops two processes writing %s at once", path, err, target)
            return None
        # The previous holder removes the file as it lets go: hold the file the path names now, not one it removed.
        if _same_file(fd, path):
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(asdict(Holder.this_process())).encode())
    return fd


def _release(path: Path, fd: int | None) -> None:
    if fd is None:
        return
    path.unlink(missing_ok=True)  # before the flock goes: a writer that opens the path next finds a new file
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_path.st_dev, on_path.st_ino)


def _read_holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        return str(Holder(**record))
    except (OSError, ValueError, TypeError):  # empty while the holder writes it, or written by another version
        return "a process that has not said which (the lock file holds no record yet)"
