"""`ltsoups compare` as a library call: choose methods and seeds, run them, write the report, its plots and
MLflow runs; and the two-axis grid, one comparison per eta value."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ltsoups.analysis.statistics import BOOTSTRAP_SEED, RESAMPLES
from ltsoups.compare.methods import REFERENCE, Method, load_methods
from ltsoups.compare.report import (
    ComparisonReport,
    Summary,
    build_report,
    report_dir,
    write_report,
)
from ltsoups.compare.results import ComparisonSpec
from ltsoups.compare.run import ComparisonDisplay, ComparisonHooks, ComparisonRequest, run_comparison
from ltsoups.config import ConfigError, ConfigIssue, ConfigLayer, LtSoupsConfig, override_layer, validate_layers
from ltsoups.io.atomic import write_json_atomic
from ltsoups.schema import StrictModel
from ltsoups.workspace import ComparisonWorkspace

ETA_KEY = "data.dataset.params.eta"
PAPER_ETAS = tuple(f / (100 - f) for f in (95, 75, 50, 25, 5))
"""The paper's span, eta 19 down to 0.05, as head percentages 95, 75, 50, 25 and 5 of the classes."""


@dataclass(frozen=True)
class CompareSettings:
    methods: tuple[str, ...] | None = None
    """None: every method of the methods files, in their order"""
    methods_file: Path | None = None
    seeds: int | None = None
    """None: the config's compare.seeds"""
    reference: str | None = None
    """None: lt-soups, with no paired differences when it is not among the methods"""
    resamples: int = RESAMPLES
    bootstrap_seed: int = BOOTSTRAP_SEED

    def __post_init__(self) -> None:
        issues = []
        if self.seeds is not None and self.seeds < 1:
            issues.append(ConfigIssue("--seeds", self.seeds, "at least one seed"))
        if self.resamples < 1:
            issues.append(ConfigIssue("--resamples", self.resamples, "at least one resample"))
        if issues:
            raise ConfigError(issues, "ltsoups compare")

    @property
    def paired_with(self) -> str:
        return self.reference or REFERENCE

    def chosen(self) -> list[Method]:
        """The methods to run, checked with the reference against the methods files before anything runs."""
        known = load_methods(self.methods_file)
        names = list(self.methods) if self.methods else list(known)
        issues = [
            ConfigIssue("--method", name, f"unknown method; known: {', '.join(known)}")
            for name in names
            if name not in known
        ]
        issues += [
            ConfigIssue("--method", name, "given twice") for name in sorted({n for n in names if names.count(n) > 1})
        ]
        if self.reference is not None and self.reference not in names:
            issues.append(
                ConfigIssue("--reference", self.reference, f"not among the methods compared: {', '.join(names)}")
            )
        if issues:
            raise ConfigError(issues, "ltsoups compare")
        return [known[name] for name in names]


@dataclass(frozen=True)
class Outcome:
    report: ComparisonReport
    files: list[Path]


class SuiteHooks(ComparisonHooks, Protocol):
    def report_written(self, report: ComparisonReport, files: Sequence[Path]) -> None: ...


class ComparisonTracking(Protocol):
    """Opens a comparison's tracking for a block (the tracking layer's ``comparison_tracking``)."""

    def __call__(
        self, config: LtSoupsConfig, settings: Mapping[str, str], label: str
    ) -> AbstractContextManager[SuiteHooks]: ...


def compare(
    base: Sequence[ConfigLayer],
    source: str,
    root: Path,
    settings: CompareSettings,
    display: ComparisonDisplay,
    tracking: ComparisonTracking,
    label: str = "",
) -> Outcome:
    """Run the chosen methods at seeds base seed .. base seed + S - 1 and write the report into ``root``."""
    methods = settings.chosen()
    config = validate_layers(base, source)
    seeds = [config.seed + i for i in range(settings.seeds or config.compare.seeds)]
    described = {
        "methods": ", ".join(m.name for m in methods),
        "seeds": ", ".join(map(str, seeds)),
        "reference": settings.paired_with,
        "folder": str(root),
    }
    with tracking(config, described, label) as tracker:
        request = ComparisonRequest(root, base, source, methods, seeds, settings.paired_with)
        run_comparison(request, display, tracker)
        outcome = write_outputs(root, settings)
        tracker.report_written(outcome.report, outcome.files)
    return outcome


def write_outputs(root: Path, settings: CompareSettings) -> Outcome:
    """The report of the comparison at ``root`` from its saved logits: files and plots under root/report."""
    from ltsoups.compare.plots import plot_groups, plot_tradeoff

    report = build_report(root, settings.resamples, settings.bootstrap_seed)
    files = write_report(report, root)
    files.append(plot_tradeoff(report, report_dir(root) / "tradeoff.png"))
    files.append(plot_groups(report, report_dir(root) / "groups.png"))
    return Outcome(report, files)


# -------------------------------------------------------------------------------------------- grid


class EtaPoint(StrictModel):
    """One comparison of the two-axis grid, as grid.json lists it."""

    eta: float
    folder: str
    metrics: dict[str, dict[str, Summary]]
    """method -> balanced, head, tail, many and few accuracy over seeds (``GRID_METRICS``, where present)"""


def compare_grid(
    base: Sequence[ConfigLayer],
    source: str,
    root: Path,
    settings: CompareSettings,
    etas: Sequence[float],
    display: ComparisonDisplay,
    tracking: ComparisonTracking,
) -> tuple[list[tuple[float, ComparisonReport]], list[Path]]:
    """One comparison per eta of the dataset's two-axis profile (``data.dataset.params.eta``), then a plot of
    accuracy against eta per method."""
    if not etas or any(not math.isfinite(eta) or eta <= 0 for eta in etas):
        raise ConfigError([ConfigIssue("--eta", list(etas), "give positive eta values")], "ltsoups compare --grid")
    grid = ComparisonWorkspace(root)
    folders = [grid.eta(eta).root.name for eta in etas]
    if len(set(folders)) < len(folders):
        shared = sorted({folder for folder in folders if folders.count(folder) > 1})
        message = f"values that share a folder ({', '.join(shared)}): give each eta once"
        raise ConfigError([ConfigIssue("--eta", list(etas), message)], "ltsoups compare --grid")
    points = []
    for eta in etas:
        display.say(f"eta {eta:.4g}")
        layers = [*base, override_layer(f"{ETA_KEY}={eta!r}")]
        outcome = compare(
            layers,
            f"{source} + --eta {eta:.4g}",
            grid.eta(eta).root,
            settings,
            display,
            tracking,
            f"eta {eta:.4g}",
        )
        points.append((eta, outcome.report))
    return points, _write_grid(grid, points)


def grid_report(root: Path, settings: CompareSettings) -> tuple[list[tuple[float, ComparisonReport]], list[Path]]:
    """Every eta's report of the grid at ``root`` recomputed from its saved logits, then grid.json and the plot."""
    grid, points, files = ComparisonWorkspace(root), [], []
    for comparison in grid.grid_comparisons():
        spec = ComparisonSpec.read(comparison.root)
        eta = float(spec.base_config["data"]["dataset"]["params"]["eta"])
        outcome = write_outputs(comparison.root, settings)
        points.append((eta, outcome.report))
        files += outcome.files
    if not points:
        raise FileNotFoundError(f"no grid at {root} (no eta folder with a comparison): run `ltsoups compare --grid`")
    points.sort(key=lambda point: -point[0])
    return points, [*files, *_write_grid(grid, points)]


GRID_METRICS = ("balanced", "head", "tail", "many", "few")


def _write_grid(grid: ComparisonWorkspace, points: Sequence[tuple[float, ComparisonReport]]) -> list[Path]:
    from ltsoups.compare.plots import plot_grid

    summary = [
        EtaPoint(
            eta=eta,
            folder=grid.eta(eta).root.name,
            metrics={m.method: {k: m.metrics[k] for k in GRID_METRICS if k in m.metrics} for m in report.methods},
        ).model_dump(mode="json")
        for eta, report in points
    ]
    write_json_atomic(grid.grid_summary, summary)
    return [grid.grid_summary, plot_grid(points, grid.grid_plot)]
