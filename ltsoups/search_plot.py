"""The figure of `merge --search`: validation score over the grid of lambdas, one row per N (lambda-n) or per
step of the per-factor ascent, what was picked marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ltsoups.io.atomic import atomic_path
from ltsoups.merge_search import SoupSearch


def plot_search(search: SoupSearch, out: Path) -> Path:
    """A heatmap of the search's rows (``SoupSearch.rows``) over lambda, written to ``out`` (PNG)."""
    rows = search.rows()
    lambdas = sorted({lam for row in rows for lam in row.scores})
    grid = np.full((len(rows), len(lambdas)), np.nan)
    for index, row in enumerate(rows):
        for lam, score in row.scores.items():
            grid[index, lambdas.index(lam)] = score
    figure, axes = plt.subplots(figsize=(1.0 + 0.9 * len(lambdas), 1.2 + 0.6 * len(rows)))
    image = axes.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for index, row in enumerate(rows):
        for column, lam in enumerate(lambdas):
            picked = lam == row.picked
            axes.text(
                column,
                index,
                f"{grid[index, column]:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="red" if picked else "white",
                fontweight="bold" if picked else "normal",
            )
    axes.set_xticks(range(len(lambdas)), [f"{lam:g}" for lam in lambdas])
    axes.set_yticks(range(len(rows)), [row.label for row in rows])
    axes.set_xlabel("lambda")
    axes.set_ylabel(search.row_header)
    axes.set_title(f"validation {search.metric.value} accuracy (%), {search.mode.value}; {search.marked} in red")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return out
