"""The CLI starts without the heavy libraries: help, planning, validation and the plugin list load none of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "open_clip", "mlflow", "timm", "matplotlib", "safetensors", "ray")
PROBE = f"""
import json
import sys
from ltsoups.cli.app import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit as stop:
    assert not stop.code, stop.code
print("LOADED", json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
"""


def loaded_by(args: list[str], cwd: Path) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running ``ltsoups ARGS``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return json.loads(line.removeprefix("LOADED "))


@pytest.fixture
def counts_file(tmp_path: Path) -> Path:
    path = tmp_path / "counts.json"
    path.write_text(json.dumps([500, 300, 120, 60, 20, 5]))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["plan", "--counts", "COUNTS", "--rounds", "3"],
        ["validate"],
        ["plugins", "list"],
        ["compare", "--help"],
        ["compare", "methods"],
    ],
    ids=["help", "plan --counts", "validate", "plugins list", "compare --help", "compare methods"],
)
def test_command_imports_no_heavy_library(args: list[str], counts_file: Path, tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    args = [str(counts_file) if arg == "COUNTS" else arg for arg in args]
    assert loaded_by(args, tmp_path) == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The check above can fail: `report` reads results through the evaluate stage's module, which needs torch."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    results = {"rows": [{"model": "m", "scores": {"overall": 1.0}, "weights_sha256": "0"}]}
    (tmp_path / "outputs" / "eval").mkdir(parents=True)
    (tmp_path / "outputs" / "eval" / "results.json").write_text(
        json.dumps({**results, "config_sha256": "0", "code_version": "0"})
    )
    assert "torch" in loaded_by(["report"], tmp_path)
