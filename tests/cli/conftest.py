"""Fixtures for CLI tests: a tiny but real configuration (embedded data, a random mini-CLIP on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

TINY_PARAMS = {
    "seed": 0,
    "data": {
        "dataset": {
            "name": "embedded",
            "params": {"num_classes": 6, "n_max": 40, "rho": 8, "val_per_class": 3, "test_per_class": 5},
        }
    },
    "plan": {"sampler": {"name": "progressive", "params": {"rounds": 2, "replicas": 2}}},
    "train": {
        "optim": {
            "batch_size": 16,
            "epochs": 1,
            "min_steps": 3,
            "warmup_min_steps": 1,
            "crop_scale": [0.5, 1.0],
            "resume_every": 2,
        }
    },
    "retrain_head": {"augment": False, "optim": {"batch_size": 16, "epochs": 1, "min_steps": 3, "warmup_min_steps": 1}},
    "tracking": {"enabled": False},
}


@pytest.fixture(scope="session")
def random_mini_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained `ltsoups-mini` open_clip model saved as safetensors (fast to build, no download)."""
    import open_clip
    from safetensors.torch import save_file

    from ltsoups.embedded import register_model_config

    register_model_config()
    torch.manual_seed(0)
    model = open_clip.create_model("ltsoups-mini")
    path = tmp_path_factory.mktemp("backbone") / "mini.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def tiny_params(tmp_path: Path, random_mini_clip: Path) -> Path:
    """A params.yaml for a run that takes seconds; the working directory is tmp_path/outputs."""
    params = {
        **TINY_PARAMS,
        "backbone": {"name": "open-clip", "params": {"model": "ltsoups-mini", "pretrained": str(random_mini_clip)}},
        "workdir": str(tmp_path / "outputs"),
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
