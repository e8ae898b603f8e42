"""CLI habits: --version, tables that survive a pipe, boolean options shown and taken as flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from piped_cli import piped
from typer.testing import CliRunner

from ltsoups import __version__
from ltsoups.cli.app import app

runner = CliRunner()
FLAGS = [("report", "--calibration"), ("plan", "--json"), ("merge", "--search")]


def test_version_names_the_package_version_and_the_commit() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(rf"ltsoups {re.escape(__version__)}(\+g[0-9a-f]{{12}}(\.dirty)?)?\n", result.output)


def test_tables_piped_keep_their_cells_whole() -> None:
    # stdout is a pipe here: rich would squeeze the table into 80 columns.
    shown = piped("plugins", "list")
    assert "…" not in shown and max(len(line) for line in shown.splitlines()) > 80


@pytest.mark.parametrize(("command", "option"), FLAGS)
def test_flags_are_shown_as_flags(command: str, option: str) -> None:
    shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    (line,) = [line for line in shown.splitlines() if f" {option} " in line]
    assert "<bool>" not in line


def test_a_flag_takes_no_value(tmp_path: Path) -> None:
    planned = json.loads(piped("plan", "--json", "--rounds", "1", cwd=tmp_path))
    assert [row["factor"] for row in planned] == [1, 2]
