"""`ltsoups audit-embedded` on a tiny config: the table, and a JSON file the printed numbers come from."""

import json
from pathlib import Path

import pytest
from tiny_config import tiny_params as tiny_config
from tiny_config import write_params
from typer.testing import CliRunner

from ltsoups.cli.app import app

runner = CliRunner()


def test_audit_prints_the_gap_and_standard_error_and_writes_them(tiny_params_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = runner.invoke(
        app,
        ["audit-embedded", "--params", str(tiny_params_file), "--seeds", "2", "--out", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    audit = json.loads(out.read_text())
    assert [world["world_seed"] for world in audit["worlds"]] == [0, 1]
    assert f"averaged over 2 world seeds: {audit['gap_of_mean_groups']:.1f} points" in result.output
    assert f"{audit['mean_standard_error']:.2f} points" in result.output
    for world in audit["worlds"]:
        assert f"{world['balanced_accuracy']:.1f}" in result.output
        assert len(world["classes"]) == 6 and {"name", "train_count", "group", "correct"} <= set(world["classes"][0])


def test_audit_refuses_another_dataset(tmp_path: Path, random_mini_clip: Path) -> None:
    params = write_params(tmp_path, tiny_config(random_mini_clip, data={"dataset": {"name": "cifar100-lt"}}))
    result = runner.invoke(app, ["audit-embedded", "--params", str(params)])
    assert result.exit_code == 1
    assert "needs data.dataset.name 'embedded'" in result.output


@pytest.mark.parametrize("value", ["0", "x"])
def test_audit_refuses_a_bad_seed_count(tiny_params_file: Path, value: str) -> None:
    result = runner.invoke(app, ["audit-embedded", "--params", str(tiny_params_file), "--seeds", value])
    assert result.exit_code == 2
