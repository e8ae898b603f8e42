"""`plan` and `validate` show each training's steps and warmup share, and warn where warmup outlasts half of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltsoups.cli.app import app

CIFAR_COUNTS = [int(500 * 0.01 ** (i / 99)) for i in range(100)]  # CIFAR-100-LT, rho 100: 10,847 images


@pytest.fixture
def defaults(tmp_path: Path) -> list[str]:
    """The built-in defaults (the paper's warmup max(100, 1%)) and CIFAR-100-LT's counts, N = 5."""
    (tmp_path / "counts.json").write_text(json.dumps(CIFAR_COUNTS))
    (tmp_path / "params.yaml").write_text("{}\n")
    return ["--params", str(tmp_path / "params.yaml"), "--counts", str(tmp_path / "counts.json"), "--rounds", "5"]


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def test_plan_lists_each_members_steps_and_warmup(defaults: list[str]) -> None:
    rows = json.loads(_invoke("plan", *defaults, "--json").stdout)
    assert [r["steps"] for r in rows] == [100, 100, 140, 230, 380, 570]  # official-code-facts.md, section 4 (ceil)
    assert [r["warmup_steps"] for r in rows] == [100] * 6


def test_plan_warns_where_warmup_covers_over_half_of_a_member(defaults: list[str]) -> None:
    result = _invoke("plan", *defaults)
    assert "100 (100)" in result.stdout and "43 (100)" in result.stdout  # 2^0 all warmup, 2^3 100 of 230
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert [w.split(":")[1].strip() for w in warnings] == [
        "factor 2^0 members",
        "factor 2^1 members",
        "factor 2^2 members",
    ]
    assert "warmup takes 100 of its 100 steps (100%); the learning rate peaks on the last step" in warnings[0]
    assert "warmup takes 100 of its 140 steps (71%); only 40 steps decay" in warnings[2]


def test_the_authors_warmup_and_step_rule_leave_no_warning(defaults: list[str]) -> None:
    authors = ["--set", "train.schedule.warmup_min_steps=20", "--set", "train.schedule.epoch_steps=floor-plus-one"]
    result = _invoke("plan", *defaults, *authors, "--json")
    rows = json.loads(result.stdout)
    assert [r["steps"] for r in rows] == [100, 100, 140, 230, 380, 580]
    assert [r["warmup_steps"] for r in rows] == [20] * 6
    assert "warning" not in result.stderr


def test_validate_shows_the_steps_and_warns_too(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("preset: cifar100-lt\ntrain: {schedule: {warmup_min_steps: 100}}\n")
    result = _invoke("validate", "--params", str(params))
    assert "factor 2^2 members: 140 steps (71% warmup)" in result.stdout
    assert "CR (all data): 850 steps (2% warmup)" in result.stdout  # the preset's CR keeps the authors' 20
    assert result.stderr.count("warning:") == 3 + 1  # and the preset's value the file replaced:
    assert "warning: preset cifar100-lt: 1 of its values are replaced by yours: train.schedule.warmup_min_steps" in (
        " ".join(result.stderr.split())
    )
