"""The figure of `merge --search`: validation score over lambda x N, the chosen soup marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ltsoups.io.atomic import atomic_path
from ltsoups.merge_search import SoupSearch


def plot_search(search: SoupSearch, out: Path) -> Path:
    """A heatmap of the validation score of every grid point (rows N, columns lambda), written to ``out`` (PNG)."""
    lambdas = sorted({point.lam for point in search.points})
    ns = sorted({point.n for point in search.points})
    grid = np.full((len(ns), len(lambdas)), np.nan)
    for point in search.points:
        grid[ns.index(point.n), lambdas.index(point.lam)] = search.score(point)
    figure, axes = plt.subplots(figsize=(1.0 + 0.9 * len(lambdas), 1.2 + 0.6 * len(ns)))
    image = axes.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for row, n in enumerate(ns):
        for column, lam in enumerate(lambdas):
            chosen = (n, lam) == (search.chosen.n, search.chosen.lam)
            axes.text(
                column,
                row,
                f"{grid[row, column]:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="red" if chosen else "white",
                fontweight="bold" if chosen else "normal",
            )
    axes.set_xticks(range(len(lambdas)), [f"{lam:g}" for lam in lambdas])
    factors = {point.n: point.upto_factor for point in search.points}
    axes.set_yticks(range(len(ns)), [f"{n} (up to factor {factors[n]})" for n in ns])
    axes.set_xlabel("lambda")
    axes.set_ylabel("N")
    axes.set_title(f"validation {search.metric.value} accuracy (%); chosen in red")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return out
