"""Drive a git + DVC repository with the venv's own `dvc` and `ltsoups`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent  # the venv's dvc and ltsoups, where CI installed them


@dataclass(frozen=True)
class DvcRepo:
    root: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command in the repository, with the venv's tools first on PATH (DVC stages call `ltsoups`)."""
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1",
            "OMP_NUM_THREADS": "1",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        done = subprocess.run(args, cwd=self.root, env=env, capture_output=True, text=True)
        if check and done.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "dvc"), *args, check=check)

    def repro(self, *args: str) -> list[str]:
        """Run ``dvc repro``/``dvc exp run`` (``args``); the stages it ran, in order."""
        return re.findall(r"Running stage '([^']+)'", self.dvc(*args).stdout)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
