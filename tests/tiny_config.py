"""The tiny but real configuration most end-to-end tests run: embedded data, a random mini-CLIP on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from ltsoups.config import ConfigLayer, LtSoupsConfig, validate_layers
from ltsoups.plan import member_id

TINY_DATA = {"num_classes": 6, "n_max": 40, "rho": 8, "val_per_class": 3, "test_per_class": 5}


def progressive_members(rounds: int, replicas: int = 2) -> list[str]:
    """The members of a progressive plan of ``rounds`` rounds (factors 1, 2, .., 2^rounds), in plan order."""
    return [member_id(2**k, replica) for k in range(rounds + 1) for replica in range(replicas)]


TINY_MEMBERS = progressive_members(2)
"""The members of tiny_params' plan (N = 2, M = 2)."""
ONE_ROUND_MEMBERS = progressive_members(1)
"""The members of the one-round plans (N = 1, M = 2) of the runner, DVC and tracking tests."""


def tiny_training(min_steps: int = 3, **extra: Any) -> dict[str, Any]:
    """Training sections (optimiser, schedule) for runs of a few steps; ``extra`` adds sections or keys."""
    return {
        "optim": {"batch_size": 16},
        "schedule": {"epochs": 1, "min_steps": min_steps, "warmup_min_steps": 1},
        **extra,
    }


def save_random_mini_clip(path: Path) -> Path:
    """An untrained `ltsoups-mini` open_clip model as safetensors: a real backbone file, built in a second."""
    import open_clip
    from safetensors.torch import save_file

    from ltsoups.embedded import register_model_config

    register_model_config()
    torch.manual_seed(0)
    model = open_clip.create_model("ltsoups-mini")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tiny_params(pretrained: Path | str, **sections: Any) -> dict[str, Any]:
    """A config that runs the whole method in seconds (N = 2, M = 2); ``sections`` replace top-level keys."""
    params: dict[str, Any] = {
        "seed": 0,
        "data": {"dataset": {"name": "embedded", "params": dict(TINY_DATA)}},
        "backbone": {"name": "open-clip", "params": {"model": "ltsoups-mini", "pretrained": str(pretrained)}},
        "plan": {"sampler": {"name": "progressive", "params": {"rounds": 2, "replicas": 2}}},
        "runtime": {"device": "cpu"},
        "train": tiny_training(augment={"crop_scale": [0.5, 1.0]}, resume_every=2),
        "retrain_head": tiny_training(augment={"enabled": False}),
        "tracking": {"enabled": False},
        "workdir": "outputs",
    }
    params.update(sections)
    return params


def write_params(folder: Path, params: dict[str, Any]) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def validate_config(raw: dict[str, Any], source: str = "params") -> LtSoupsConfig:
    """A validated config from one user-written mapping (over its preset and the defaults), or ConfigError."""
    return validate_layers([ConfigLayer(source, raw, user=True)], source)
