"""A temporary git + DVC repository holding this repo's dvc.yaml and params.yaml, shrunk to a tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from dvc_repo import DvcRepo

SOURCE = Path(__file__).resolve().parents[2]
TINY_DATA = {"num_classes": 6, "n_max": 40, "rho": 8, "val_per_class": 3, "test_per_class": 5}
TINY_OPTIM = {"batch_size": 16, "epochs": 1, "min_steps": 3, "warmup_min_steps": 1}


def random_mini_clip(path: Path) -> Path:
    """An untrained `ltsoups-mini` as safetensors: a real backbone file without the shipped weights."""
    import open_clip
    from safetensors.torch import save_file

    from ltsoups.embedded import register_model_config

    register_model_config()
    torch.manual_seed(0)
    model = open_clip.create_model("ltsoups-mini")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tiny_params(backbone: Path) -> dict:
    """The repository's params.yaml with a tiny dataset, N = 1, M = 2 and a few steps per training."""
    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    params["data"]["dataset"]["params"].update(TINY_DATA)
    params["plan"]["sampler"]["params"].update(rounds=1, replicas=2)
    params["members"] = ["f1-r0", "f1-r1", "f2-r0", "f2-r1"]
    params["backbone"]["params"]["pretrained"] = str(backbone)
    params["train"]["optim"].update(TINY_OPTIM)
    params["retrain_head"]["optim"].update(TINY_OPTIM)
    return params


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    """A fresh repository with dvc.yaml, .dvc/ and a copy of the package (the code the stages depend on)."""
    root = tmp_path_factory.mktemp("repo")
    backbone = random_mini_clip(tmp_path_factory.mktemp("backbone") / "mini.safetensors")
    repo = DvcRepo(root)
    repo.run("git", "init", "-q")
    repo.run("git", "config", "user.email", "ci@example.com")
    repo.run("git", "config", "user.name", "ci")
    repo.dvc("init", "-q")
    shutil.copytree(SOURCE / "ltsoups", root / "ltsoups", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SOURCE / ".dvc" / "plots", root / ".dvc" / "plots")
    for name in ("dvc.yaml", ".dvcignore", ".dvc/config"):
        shutil.copy(SOURCE / name, root / name)
    repo.write_params(tiny_params(backbone))
    (root / ".gitignore").write_text("/outputs/\n/mlflow.db\n/mlruns/\n")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "tiny pipeline")
    return repo
