"""What stands where a file belongs: a directory, a symbolic link loop, a file where one of its folders belongs."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def obstacle(path: Path) -> str | None:
    """What keeps a file from being read or written at ``path``, in words; None for a file or for nothing there."""
    if path.is_file():
        return None
    if path.is_symlink():
        return _link_problem(path)
    if path.is_dir():
        return f"{path} is a directory, where a file belongs"
    if path.exists():
        return f"{path} is not a regular file"
    return _blocked_folder(path)


def check_output(target: Path) -> None:
    """Refuse, before any work, a path where no output file can go; the OSError names what is in the way."""
    problem = obstacle(target)
    if problem is not None:
        raise OSError(f"cannot write {target}: {problem}; move it away")


def _blocked_folder(path: Path) -> str | None:
    """The first folder above ``path`` that is not one (a file, a link loop, a dangling link), in words."""
    for folder in reversed(path.absolute().parents):
        if folder.is_dir():
            continue
        if folder.is_symlink():
            return _link_problem(folder)
        if folder.exists():
            return f"{folder} is a file, where a folder belongs"
        return None  # missing folders are created by the writer
    return None


def _link_problem(link: Path) -> str:
    try:
        target = link.resolve(strict=True)
    except RuntimeError:  # how Python 3.11 and 3.12 report a loop
        return f"{link} is a symbolic link loop (`ls -l {link}`)"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"{link} is a symbolic link loop (`ls -l {link}`)"
        return f"{link} is a symbolic link to {os.readlink(link)}, which does not exist"
    return f"{link} is a symbolic link to {target}, which is not a regular file"
