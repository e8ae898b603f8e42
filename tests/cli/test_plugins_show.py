"""`ltsoups plugins show`, unknown keys answered with the allowed ones, and what `validate` checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from piped_cli import piped
from typer.testing import CliRunner

from ltsoups.cli.app import app

runner = CliRunner()


def test_plugins_show_gives_types_defaults_and_descriptions() -> None:
    shown = piped("plugins", "show", "image-folder")
    rows = {line.split("│")[1].strip(): line for line in shown.splitlines() if line.count("│") == 5}
    assert set(rows) == {"root", "folders", "lists"}
    assert "path" in rows["root"] and "required" in rows["root"]
    assert '{"train": "train", "val": "val", "test": "test"}' in rows["folders"]
    assert "list files of image paths relative to root" in rows["lists"]
    merger = runner.invoke(app, ["plugins", "show", "recursive"], env={"COLUMNS": "300"}).output
    assert re.search(r"lambda\s+│ float >= 0.0 <= 1.0", merger)


def test_plugins_show_of_an_unknown_name_lists_the_installed_ones() -> None:
    result = runner.invoke(app, ["plugins", "show", "imagefolder"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "no plugin named 'imagefolder'" in result.output and "image-folder" in result.output


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("data.dataset.params.colour", "seed, num_classes, n_max, rho, val_per_class, test_per_class, eta"),
        ("merge.merger.params.lamda", "lambda, weights, within"),
        ("train.optim.lrr", "lr, weight_decay"),
    ],
)
def test_an_unknown_key_lists_the_allowed_ones(key: str, allowed: str) -> None:
    result = runner.invoke(app, ["validate", "--set", f"{key}=1"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert f"{key}: 1 is not allowed: unknown key; allowed:" in result.output and allowed in result.output


def test_validate_without_a_params_file_says_it_checked_the_defaults(tmp_path: Path) -> None:
    shown = piped("validate", cwd=tmp_path)
    assert "no params.yaml here and no --params: validated ltsoups' built-in defaults" in shown
    assert "ok: the built-in defaults are valid" in shown
