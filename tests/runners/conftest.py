"""Fixtures for runner tests: a tiny run with its plan and theta_0 on disk, and torch on one thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from member_runs import Run, torch_threads
from tiny_config import tiny_params, tiny_training, write_params

from ltsoups.stages.context import RunContext
from ltsoups.stages.prepare import prepare
from ltsoups.stages.theta0 import build_theta0


@pytest.fixture(scope="session")
def planned_run(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> Run:
    """4 members (N = 1, M = 2) with their manifests and theta_0 written, none trained; clone it, do not edit it."""
    root = tmp_path_factory.mktemp("planned-run")
    params = tiny_params(
        random_mini_clip,
        plan={"sampler": {"name": "progressive", "params": {"rounds": 1, "replicas": 2}}},
        train=tiny_training(augment={"crop_scale": [0.5, 1.0]}, resume_every=2),
    )
    write_params(root, params)
    run = Run(root)
    context = RunContext(run.config())
    prepare(context, run.workspace)
    build_theta0(context, run.workspace)
    return run


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread, like a ray worker of one CPU."""
    with torch_threads(1):
        yield
