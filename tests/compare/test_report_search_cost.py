"""A method that chooses its merge on validation shows what the search cost in the comparison's report."""

from __future__ import annotations

from pathlib import Path

from report_files import write_result, write_spec

from ltsoups.compare.report import build_report, comparison_markdown
from ltsoups.merge_search import SearchCost


def test_the_search_cost_is_summarised_over_seeds_and_shown_beside_the_training_cost(tmp_path: Path) -> None:
    write_spec(tmp_path, ("lt-soups", "lt-soups-search"))
    for seed, val_passes in ((0, 27), (1, 29)):
        write_result(tmp_path, "lt-soups", seed)
        write_result(
            tmp_path, "lt-soups-search", seed, SearchCost(factor_merges=3, folds=val_passes + 2, val_passes=val_passes)
        )

    report = build_report(tmp_path, resamples=10)
    plain, searched = report.methods
    assert "search_folds" not in plain.cost and "search_val_passes" not in plain.cost
    assert searched.cost["search_val_passes"].values == (27.0, 29.0) and searched.cost["search_folds"].mean == 30.0
    lines = comparison_markdown(report).splitlines()
    assert lines[2].endswith("| search: folds / val passes |")
    assert lines[4].startswith("| lt-soups |") and lines[4].endswith("| - |")
    assert lines[5].startswith("| lt-soups-search |") and lines[5].endswith("| 30 / 28 |")
