"""`train-members` records members in dvc.lock only when that record is true (tests/pipeline/ runs the real dvc)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ltsoups.cli.dvc_lock import record_members
from ltsoups.config import load_config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"optim": {"lr": 1e-4}}}))
    return tmp_path


def test_outside_a_dvc_pipeline_nothing_is_recorded_or_said(project: Path) -> None:
    assert record_members(["f1-r0"], load_config(project / "params.yaml")) is None


@pytest.mark.parametrize(
    "override", ["train.optim.lr=1e-3", "seed=3", "workdir=elsewhere"], ids=["train", "seed", "workdir"]
)
def test_members_trained_from_settings_params_yaml_lacks_are_not_recorded(project: Path, override: str) -> None:
    (project / "dvc.yaml").write_text("stages: {}\n")
    line = record_members(["f1-r0"], load_config(project / "params.yaml", [override]))
    assert line is not None and line.startswith("not recorded in dvc.lock")
    assert "params.yaml does not hold" in line
    assert not (project / "dvc.lock").exists()
