"""Members trained outside `dvc repro` (by `train-members`), recorded in dvc.lock so that DVC keeps them.

`dvc commit` stores a stage's current deps, params and outs as if `dvc repro` had run it. That is
true of a train-member stage only when the member was trained from what the stage reads: params.yaml
(not `--params FILE` or `--set` values it does not hold) and the code and files on disk now.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ltsoups.config import LtSoupsConfig, load_config
from ltsoups.stages.sections import STAGE_PARAMS

PARAMS = Path("params.yaml")
# What a train-member stage of dvc.yaml reads from params.yaml, and where its outputs go.
STAGE_SECTIONS = (*STAGE_PARAMS["train-member"], "workdir")


def member_stage(member: str) -> str:
    return f"train-member@{member}"


def record_members(members: Sequence[str], config: LtSoupsConfig) -> str | None:
    """`dvc commit` the train-member stages of ``members``; a line saying what was recorded, or why not.

    None when the working directory is no DVC pipeline.
    """
    if not members or not Path("dvc.yaml").is_file():
        return None
    if not PARAMS.is_file() or load_config(PARAMS).section_hash(*STAGE_SECTIONS) != config.section_hash(
        *STAGE_SECTIONS
    ):
        return (
            "not recorded in dvc.lock: these members were trained with settings params.yaml does not hold "
            f"(in {', '.join(STAGE_SECTIONS)}), so `dvc repro` would train them again"
        )
    listed = _dvc("stage", "list", "--name-only")
    if listed.returncode:
        return f"not recorded in dvc.lock: `dvc stage list` failed: {_last_line(listed)}"
    stages = set(listed.stdout.split())
    targets = [member_stage(member) for member in members if member_stage(member) in stages]
    if not targets:
        return "not recorded in dvc.lock: dvc.yaml has no train-member stage for these members (see `members`)"
    committed = _dvc("commit", "--force", "--quiet", *targets)
    if committed.returncode:
        return f"not recorded in dvc.lock: `dvc commit` failed: {_last_line(committed)}"
    return f"recorded {len(targets)} train-member stage(s) in dvc.lock: `dvc repro` keeps these members"


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"
