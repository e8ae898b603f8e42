"""Figures of a run's evaluation: per-class accuracy against class size, and shot-group bars."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ltsoups.io.atomic import atomic_path
from ltsoups.stages.evaluate import Results
from ltsoups.workspace import Workspace

_MODELS = (("zero_shot", "theta_0 (zero-shot)"), ("stage1", "stage 1 (soup)"), ("final", "stage 1 + CR"))


def plot_results(workspace: Workspace, out: Path) -> Path:
    """Write a PNG with per-class test accuracy vs training count and many/medium/few bars."""
    per_class = json.loads(workspace.per_class.read_text())
    results = Results.read(workspace).rows
    figure, (scatter, bars) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    counts = [row["train_count"] for row in per_class]
    for key, label in _MODELS:
        scatter.scatter(counts, [row[key] for row in per_class], s=18, alpha=0.75, label=label)
    scatter.set_xscale("log")
    scatter.set_xlabel("training samples of the class (log scale)")
    scatter.set_ylabel("test accuracy (%)")
    scatter.set_title("Per-class accuracy against class size")
    scatter.legend()
    groups = [g for g in ("many", "medium", "few") if any(g in row.scores for row in results)]
    width = 0.8 / len(results)
    for index, row in enumerate(results):
        positions = [g + index * width for g in range(len(groups))]
        bars.bar(positions, [row.scores.get(g, 0.0) for g in groups], width=width, label=row.model)
    bars.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
    bars.set_ylabel("mean per-class test accuracy (%)")
    bars.set_title("Shot groups")
    bars.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return out
