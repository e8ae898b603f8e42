"""The comparison's figures, from a report on hand-written results."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.image
from report_files import write_result, write_spec

from ltsoups.compare.plots import plot_tradeoff
from ltsoups.compare.report import build_report


def test_the_tradeoff_figure_says_why_it_is_empty_when_no_class_is_many_shot(tmp_path: Path) -> None:
    write_spec(tmp_path, ("lt-soups",), train_counts=(50, 50, 5), class_groups=("medium", "medium", "few"))
    for seed in (0, 1):
        write_result(tmp_path, "lt-soups", seed)
    report = build_report(tmp_path, resamples=10)
    assert "many" not in report.methods[0].metrics and "few" in report.methods[0].metrics
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a legend with no entries
        figure = plot_tradeoff(report, tmp_path / "tradeoff.png")
    assert matplotlib.image.imread(figure).shape[:2] == (660, 1045)
