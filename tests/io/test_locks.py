"""One writer per output: a lock held by another live process names it; a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ltsoups.io.atomic import write_text_atomic
from ltsoups.io.locks import OutputLocked, lock_path, writing
from ltsoups.io.safetensors import CheckpointError, read_header

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ltsoups.io.locks import writing
    with writing(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
    """
)


@contextmanager
def held_elsewhere(target: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``target``'s lock for the block (it is killed after)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_held_by_another_process_names_it_and_nothing_is_written(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    with held_elsewhere(target) as holder, pytest.raises(OutputLocked) as locked, writing(target):
        write_text_atomic(target, "second writer")
    message = str(locked.value)
    assert f"pid {holder.pid} on {socket.gethostname()}" in message and str(target) in message
    assert "-c" in message  # the holder's command line
    assert not target.exists()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    with held_elsewhere(target) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert lock_path(target).is_file()  # the dead holder's record stays
        with writing(target):
            write_text_atomic(target, "taken over")
    assert target.read_text() == "taken over" and not lock_path(target).exists()


def test_a_process_may_take_a_lock_it_holds_and_lets_go_only_at_the_outermost_block(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    with writing(target):
        with writing(target):
            pass
        assert lock_path(target).exists()
    assert not lock_path(target).exists()


@pytest.mark.parametrize("blocker", ["directory", "loop", "folder loop", "file as folder"])
def test_a_directory_or_a_link_loop_where_an_output_belongs_is_named_before_any_work(
    tmp_path: Path, blocker: str
) -> None:
    target = tmp_path / "member" / "weights.safetensors"
    culprit = {"directory": target, "loop": target, "folder loop": target.parent, "file as folder": target.parent}
    if blocker == "directory":
        target.mkdir(parents=True)
    elif blocker == "file as folder":
        target.parent.write_text("not a folder")
    else:
        culprit[blocker].parent.mkdir(parents=True, exist_ok=True)
        other = culprit[blocker].with_name("other")
        culprit[blocker].symlink_to(other)
        other.symlink_to(culprit[blocker])
    expected = {
        "directory": "is a directory, where a file belongs",
        "loop": "is a symbolic link loop",
        "folder loop": "is a symbolic link loop",
        "file as folder": "is a file, where a folder belongs",
    }[blocker]
    with pytest.raises(OSError, match=expected) as refused, writing(target):
        raise AssertionError("the block must not run")
    assert str(culprit[blocker]) in str(refused.value)
    with pytest.raises(OSError, match=expected):
        write_text_atomic(target, "x")
    if blocker in ("directory", "loop"):
        with pytest.raises(CheckpointError, match=f"cannot read {target}: .*{expected}"):
            read_header(target)
