"""Atomic writes: an output is either its old bytes or all of its new ones, and a failed write names it."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ltsoups.io.paths import check_output


def _file_mode() -> int:
    # mkstemp creates files readable by their owner only; outputs get the mode open() would give them.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def _write_error(target: Path, err: OSError) -> OSError:
    if err.errno is None:
        return OSError(f"cannot write {target}: {err}")
    return OSError(err.errno, f"cannot write {target}: {err.strerror}")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it only if the block succeeds.

    A failed write (no space, no permission) leaves neither the temporary nor a changed ``target``,
    and the OSError names ``target``; so does a directory or a link loop where ``target`` or its folder
    belongs, before anything is written. Temporaries a killed writer left beside ``target`` are removed
    once it is written.
    """
    check_output(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise _write_error(target, err) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
    except OSError as err:
        raise _write_error(target, err) from err
    finally:
        tmp_path.unlink(missing_ok=True)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: Path, value: Any) -> None:
    write_text_atomic(target, json.dumps(value, indent=2, sort_keys=True) + "\n")
