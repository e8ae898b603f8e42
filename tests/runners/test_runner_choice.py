"""Choosing a runner: the names installed, a clear error for an unknown one, and for `ray` without Ray."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from tiny_config import tiny_params, write_params
from typer.testing import CliRunner

from ltsoups.cli.app import app
from ltsoups.config import ConfigError, load_config

cli = CliRunner()


@pytest.fixture
def params(tmp_path: Path, random_mini_clip: Path) -> Path:
    return write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(tmp_path / "outputs")))


def invoke(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_plugins_list_shows_the_runners_with_their_distribution() -> None:
    code, output = invoke("plugins", "list")
    assert code == 0
    for name in ("local", "ray"):
        assert re.search(rf"ltsoups\.runners\s+│\s+{name}\s+│\s+ltsoups \d", output), output
    assert "pip install 'ltsoups[ray]'" in output  # the description is text, not rich markup


@pytest.mark.parametrize("command", ["train-members", "run"])
def test_an_unknown_runner_lists_the_installed_ones_and_writes_nothing(params: Path, command: str) -> None:
    code, output = invoke(command, "--runner", "slurm", "--params", str(params))
    assert code == 2
    assert "runner.name: 'slurm' is not allowed: unknown runner 'slurm'; installed: local, ray" in output
    assert sorted(p.name for p in params.parent.iterdir()) == ["params.yaml"]


def test_the_ray_runner_without_ray_says_how_to_install_it(params: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if Ray were not installed
    code, output = invoke("train-members", "--runner", "ray", "--params", str(params))
    assert code == 1
    assert "the ray runner needs Ray, which is not installed here: pip install 'ltsoups[ray]'" in output
    assert sorted(p.name for p in params.parent.iterdir()) == ["params.yaml"]


def test_runner_params_you_wrote_follow_the_runner_you_choose() -> None:
    config = load_config(None, ["runner.params.num_cpus=2", "runner.name=ray"])  # what --set ... --runner ray gives
    assert (config.runner.name, config.runner.params.num_cpus) == ("ray", 2)


def test_a_local_cluster_size_with_a_cluster_address_is_an_error() -> None:
    with pytest.raises(ConfigError, match="cluster_cpus 2 sizes the local cluster started without an address"):
        load_config(None, ["runner={name: ray, params: {address: auto, cluster_cpus: 2}}"])


def test_the_runner_is_no_part_of_any_stage_hash() -> None:
    from ltsoups.stages.sections import HEAD_SECTIONS
    from ltsoups.tracking.parent import common_tags

    local, ray = load_config(None), load_config(None, ["runner.name=ray"])
    assert local.section_hash(*HEAD_SECTIONS) == ray.section_hash(*HEAD_SECTIONS)
    assert common_tags(local) == common_tags(ray)  # so train-members on ray and later stages share one parent
