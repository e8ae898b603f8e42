"""`ltsoups export`: verified files, and the Python it prints classifies an image with them."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltsoups.cli.app import app

runner = CliRunner()


@pytest.mark.slow
def test_export_prints_python_that_classifies_an_image(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "run"
    shutil.copytree(finished_run / "outputs" / "final", root / "outputs" / "final")
    shutil.copyfile(finished_run / "params.yaml", root / "params.yaml")
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["export", "open-clip", "--check-images", "8"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "verified with open-clip: 8 validation images" in result.output
    assert (root / "outputs" / "export" / "open-clip" / "open_clip_model.safetensors").is_file()
    code = result.output.split("classify an image with it:\n", 1)[1]
    from PIL import Image

    Image.new("RGB", (48, 40), (200, 30, 30)).save("IMAGE.png")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "usage", "exec"), {})
    classes = (finished_run / "outputs" / "final" / "final.safetensors.json").read_text()
    assert printed.getvalue().strip() and printed.getvalue().strip() in classes

    refused = runner.invoke(app, ["export", "timm"])
    assert refused.exit_code == 1 and "choose one of: open-clip, onnx" in refused.output
