"""Figures of a comparison: the head/tail trade-off, shot-group bars, and accuracy against eta on a grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ltsoups.compare.report import ComparisonReport, Summary
from ltsoups.io.atomic import atomic_path

GROUPS = ("many", "medium", "few", "balanced")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def _spread(summary: Summary) -> float:
    return summary.std or 0.0


def _save(figure: Figure, out: Path) -> Path:
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return out


def plot_tradeoff(report: ComparisonReport, out: Path) -> Path:
    """Many-shot against few-shot test accuracy per method, error bars one std over seeds."""
    figure, axes = plt.subplots(figsize=(9.5, 6))
    for index, m in enumerate(report.methods):
        many, few = m.metrics.get("many"), m.metrics.get("few")
        if many is None or few is None:
            continue
        # Methods often sit within a point of each other: a legend (colour and marker) instead of labels on the
        # points, which would overlap.
        marker = MARKERS[index % len(MARKERS)]
        axes.errorbar(many.mean, few.mean, xerr=_spread(many), yerr=_spread(few), fmt=marker, capsize=3, label=m.method)
    axes.set_xlabel("many-shot accuracy (%)")
    axes.set_ylabel("few-shot accuracy (%)")
    axes.set_title(f"Head against tail, {report.seeds_text} (error bars: 1 std over seeds)")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    else:
        message = "nothing to plot: no class of this data is many-shot, or none is few-shot (data.thresholds)"
        axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    return _save(figure, out)


def plot_groups(report: ComparisonReport, out: Path) -> Path:
    """Grouped bars: per shot group (and balanced), one bar per method, error bars one std over seeds."""
    figure, axes = plt.subplots(figsize=(max(8, 1.2 * len(report.methods) + 4), 5))
    groups = [g for g in GROUPS if any(g in m.metrics for m in report.methods)]
    width = 0.8 / max(len(report.methods), 1)
    for index, m in enumerate(report.methods):
        summaries = [m.metrics.get(g) for g in groups]
        axes.bar(
            [g + index * width for g in range(len(groups))],
            [0.0 if s is None else s.mean for s in summaries],
            width=width,
            yerr=[0.0 if s is None else _spread(s) for s in summaries],
            capsize=2,
            label=m.method,
        )
    axes.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
    axes.set_ylabel("test accuracy (%), mean over seeds")
    axes.set_title("Accuracy per shot group (error bars: 1 std over seeds)")
    axes.legend(fontsize=7, ncol=2)
    return _save(figure, out)


def plot_grid(points: Sequence[tuple[float, ComparisonReport]], out: Path) -> Path:
    """Balanced, head and tail accuracy against eta (log scale; the paper's Figure 2), one line per method."""
    figure, panels = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    methods = list(dict.fromkeys(m.method for _, report in points for m in report.methods))
    for panel, metric in zip(panels, ("balanced", "head", "tail"), strict=True):
        for method in methods:
            line = [
                (eta, s)
                for eta, report in sorted(points, key=lambda point: point[0])
                for m in report.methods
                if m.method == method and (s := m.metrics.get(metric)) is not None
            ]
            if line:
                panel.errorbar(
                    [eta for eta, _ in line],
                    [s.mean for _, s in line],
                    yerr=[_spread(s) for _, s in line],
                    marker="o",
                    capsize=2,
                    label=method,
                )
        panel.set_xscale("log")
        panel.set_xlabel("eta = head classes / tail classes (log scale)")
        panel.set_title(f"{metric} accuracy")
        panel.grid(alpha=0.3)
    panels[0].set_ylabel("test accuracy (%), mean over seeds")
    panels[-1].legend(fontsize=7)
    return _save(figure, out)
