"""`ltsoups compare --grid`: one comparison per eta of the embedded two-axis profile, and accuracy against eta."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_comparison import run_cli
from tiny_config import tiny_params, write_params

from ltsoups.plugins.datasets import EmbeddedDataset, EmbeddedParams

TWO_AXIS = {"num_classes": 6, "n_max": 120, "rho": 24, "val_per_class": 2, "test_per_class": 3}


@pytest.mark.parametrize(("eta", "head", "smallest"), [(19, 6 - 1, 100), (3, 4, 5), (1, 3, 5), (0.2, 1, 5)])
def test_the_embedded_two_axis_profile_has_eta_head_classes(eta: float, head: int, smallest: int) -> None:
    counts = EmbeddedDataset(EmbeddedParams(**TWO_AXIS, eta=eta)).class_counts()
    assert (counts > 100).sum() == head  # H = round(K eta / (1 + eta)), at least one tail class
    # The authors' curve starts each group at its start value: a lone tail class gets 100, not n_max / rho.
    assert counts[0] == 120 and counts[-1] == smallest and np.all(np.diff(counts) <= 0)


def test_without_eta_the_profile_stays_exponential() -> None:
    counts = EmbeddedDataset(EmbeddedParams(**TWO_AXIS)).class_counts()
    assert counts.tolist() == [int(120 * (1 / 24) ** (i / 5)) for i in range(6)]


@pytest.mark.slow
def test_the_grid_writes_a_comparison_per_eta_and_the_plot(tmp_path: Path, random_mini_clip: Path) -> None:
    data = {"dataset": {"name": "embedded", "params": TWO_AXIS}}
    params = write_params(tmp_path, tiny_params(random_mini_clip, data=data, workdir=str(tmp_path / "outputs")))
    run_cli(
        "compare", "--grid", "--eta", "3", "--eta", "0.5", "-m", "zero-shot", "-m", "linear-probe",
        "--reference", "zero-shot", "--seeds", "1", "--resamples", "20", "-p", str(params),
    )  # fmt: skip
    root = tmp_path / "outputs" / "compare"
    grid = json.loads((root / "grid.json").read_text())
    assert [point["eta"] for point in grid] == [3.0, 0.5]
    for point in grid:
        assert set(point["metrics"]) == {"zero-shot", "linear-probe"}
        spec = json.loads((root / point["folder"] / "comparison.json").read_text())
        assert spec["base_config"]["data"]["dataset"]["params"]["eta"] == point["eta"]
    counts = [json.loads((root / p["folder"] / "comparison.json").read_text())["train_counts"] for p in grid]
    assert sum(n > 100 for n in counts[0]) == 4 and sum(n > 100 for n in counts[1]) == 2
    assert (root / "grid.png").read_bytes().startswith(b"\x89PNG")
    assert {"balanced", "head", "tail"} <= set(grid[0]["metrics"]["zero-shot"])

    (root / "grid.json").unlink()
    run_cli("compare", "report", "--grid", "--out", str(root), "--resamples", "20")  # from the saved logits alone
    assert json.loads((root / "grid.json").read_text()) == grid
