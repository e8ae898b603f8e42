"""params.yaml's `members` (what dvc.yaml trains) must match the plan: a wrong list is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ltsoups.cli.app import app
from ltsoups.config import ConfigError, load_config
from ltsoups.member_list import check_member_list, planned_members
from ltsoups.registry import installed_registry

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_params_list_the_planned_members() -> None:
    config = load_config(ROOT / "params.yaml")
    assert config.members is not None
    assert list(config.members) == planned_members(config, installed_registry())


def test_raising_n_without_the_list_names_the_list_to_set() -> None:
    config = load_config(ROOT / "params.yaml", ["plan.sampler.params.rounds=5"])
    with pytest.raises(ConfigError) as raised:
        check_member_list(config, "params.yaml")
    (issue,) = raised.value.issues
    assert issue.location == "members"
    assert "trains 12 members" in issue.message
    assert "members: [f1-r0, f1-r1, f2-r0, f2-r1, f4-r0, f4-r1, f8-r0, f8-r1, f16-r0, f16-r1, f32-r0, f32-r1]" in (
        issue.message
    )


def test_no_list_no_check() -> None:
    listed = load_config(None, ["plan.sampler.params.rounds=2", "members=[f1-r0]"])
    with pytest.raises(ConfigError):
        check_member_list(listed, "defaults")  # this plan trains six members, not the one listed...
    unlisted = load_config(None, ["plan.sampler.params.rounds=2"])
    assert unlisted.members is None
    check_member_list(unlisted, "defaults")  # ...but without a list there is nothing it must agree with


def test_prepare_refuses_a_wrong_list_and_writes_nothing(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["members"] = params["members"][:-1]
    params["workdir"] = str(tmp_path / "outputs")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["prepare", "--params", str(path)])
    assert result.exit_code == 2
    assert "members" in result.output and "f8-r1" in result.output
    assert not (tmp_path / "outputs").exists()
