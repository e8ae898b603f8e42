"""`ltsoups predict` on image files: the evaluation's accuracy from PNG files, unreadable images named and counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from evaluated_split import evaluated_test_split
from typer.testing import CliRunner

from ltsoups.cli.app import app
from ltsoups.evaluation import score_predictions

runner = CliRunner()


@pytest.fixture
def run_folder(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The finished run's params and final model in a folder of its own, the current directory."""
    root = tmp_path / "run"
    shutil.copytree(finished_run / "outputs" / "final", root / "outputs" / "final")
    shutil.copyfile(finished_run / "params.yaml", root / "params.yaml")
    monkeypatch.chdir(root)
    return root


@pytest.mark.slow
def test_predict_on_the_test_images_as_png_files_gives_the_evaluated_balanced_accuracy(
    finished_run: Path, run_folder: Path
) -> None:
    evaluated = evaluated_test_split(finished_run)
    folder = run_folder / "images"
    for i in range(len(evaluated.split)):  # in nested folders: the search is recursive
        path = folder / f"class-{evaluated.split.labels[i]}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        evaluated.split.source.image(i).save(path)
    result = runner.invoke(app, ["predict", "images", "--top-k", "3", "--out", "predictions.jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in Path("predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(evaluated.split)
    assert all(len(row["top"]) == 3 for row in rows)
    names = list(evaluated.split.class_names)
    by_image = {int(Path(row["path"]).stem): names.index(row["top"][0]["class"]) for row in rows}
    predicted = np.array([by_image[i] for i in range(len(evaluated.split))])
    scores = score_predictions(predicted, evaluated.split.labels, evaluated.train_counts, evaluated.thresholds)
    assert scores.balanced == evaluated.balanced
    assert (predicted == evaluated.saved.logits.argmax(axis=1)).all()


@pytest.mark.slow
def test_unreadable_images_are_named_skipped_and_counted(finished_run: Path, run_folder: Path) -> None:
    evaluated = evaluated_test_split(finished_run)
    evaluated.split.source.image(0).save(run_folder / "good.png")
    (run_folder / "truncated.png").write_bytes((run_folder / "good.png").read_bytes()[:40])
    (run_folder / "text.jpg").write_text("not an image")
    listed = run_folder / "images.txt"
    listed.write_text("good.png\ntruncated.png\n\ntext.jpg\n")
    result = runner.invoke(app, ["predict", str(listed), "--out", "out.csv"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "truncated.png" in result.output and "text.jpg" in result.output
    assert "2 of 3 images could not be read" in result.output
    lines = Path("out.csv").read_text().splitlines()
    assert lines[0] == "path,class_1,probability_1" and len(lines) == 2 and "good.png" in lines[1]


@pytest.mark.slow
def test_predict_refuses_a_missing_input_and_an_unknown_output_format(run_folder: Path) -> None:
    missing = runner.invoke(app, ["predict", "nowhere.png"])
    assert missing.exit_code == 1 and "nowhere.png" in missing.output
    fmt = runner.invoke(app, ["predict", "outputs", "--out", "predictions.xlsx"])
    assert fmt.exit_code == 1 and ".csv" in fmt.output and ".jsonl" in fmt.output
