"""MLflow's standard tags of where a run comes from: the command, its source type, the code's git commit, the user."""

from __future__ import annotations

import getpass
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

# MLflow's limit on a tag value is far above this; a command line longer than this says nothing more.
_MAX_COMMAND = 500


@cache
def source_tags() -> dict[str, str]:
    """``mlflow.source.name`` (this process's command line), ``mlflow.source.type``, ``mlflow.user`` and, from a git
    checkout of ltsoups, ``mlflow.source.git.commit``: the columns and run-page fields MLflow fills from them."""
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    tags = {"mlflow.source.name": command[:_MAX_COMMAND], "mlflow.source.type": "LOCAL", "mlflow.user": _user()}
    commit = _git_commit()
    if commit is not None:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's uid without a passwd entry)
        return "unknown"


def _git_commit() -> str | None:
    """The full commit of the git checkout ltsoups runs from; None for an installed package."""
    source = Path(__file__).resolve().parent
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
