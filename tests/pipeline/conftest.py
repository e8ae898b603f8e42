"""A temporary git + DVC repository holding this repo's dvc.yaml and params.yaml, shrunk to a tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dvc_repo import DvcRepo
from tiny_config import ONE_ROUND_MEMBERS, TINY_DATA, tiny_training

SOURCE = Path(__file__).resolve().parents[2]


def shrunk_repo_params(backbone: Path) -> dict:
    """The repository's params.yaml with a tiny dataset, N = 1, M = 2 and a few steps per training."""
    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    params["data"]["dataset"]["params"].update(TINY_DATA)
    params["plan"]["sampler"]["params"].update(rounds=1, replicas=2)
    params["members"] = list(ONE_ROUND_MEMBERS)
    params["backbone"]["params"]["pretrained"] = str(backbone)
    params["runtime"]["device"] = "cpu"
    for stage in ("train", "retrain_head"):
        for section, values in tiny_training().items():
            params[stage][section].update(values)
    return params


def init_repo(root: Path, params: dict) -> DvcRepo:
    """A git + DVC repository at ``root`` with dvc.yaml, .dvc/, a copy of the package and ``params``, committed."""
    repo = DvcRepo(root)
    repo.run("git", "init", "-q")
    repo.run("git", "config", "user.email", "ci@example.com")
    repo.run("git", "config", "user.name", "ci")
    repo.dvc("init", "-q")
    # The embedded recipe's own pipeline (ltsoups/embedded/dvc.yaml) stays out: these tests are about dvc.yaml.
    ignore = shutil.ignore_patterns("__pycache__", "dvc.yaml", "dvc.lock")
    shutil.copytree(SOURCE / "ltsoups", root / "ltsoups", ignore=ignore)
    shutil.copytree(SOURCE / ".dvc" / "plots", root / ".dvc" / "plots")
    for name in ("dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/offline_plots.html"):
        shutil.copy(SOURCE / name, root / name)
    repo.write_params(params)
    (root / ".gitignore").write_text("/outputs/\n/mlflow.db\n/mlruns/\n")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "tiny pipeline")
    return repo


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> DvcRepo:
    """A fresh repository with dvc.yaml, .dvc/ and a copy of the package (the code the stages depend on)."""
    return init_repo(tmp_path_factory.mktemp("repo"), shrunk_repo_params(random_mini_clip))
