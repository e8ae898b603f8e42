"""Run the installed `ltsoups` as a user's shell does when its output goes into a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LTSOUPS = Path(sys.executable).parent / "ltsoups"


def piped(*args: str, cwd: Path | None = None) -> str:
    """What ``ltsoups ARGS`` prints into a pipe, with no $COLUMNS (which rich would follow)."""
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    return subprocess.run([LTSOUPS, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
