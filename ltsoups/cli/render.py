"""Rich tables for plans, plugins and results."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ltsoups.params_doc import ParamDoc
from ltsoups.plan import FactorSummary, factor_label
from ltsoups.registry import PluginEntry, PluginKind, PluginRegistry
from ltsoups.training.budget import StepBudget

if TYPE_CHECKING:
    from ltsoups.compare.methods import Method
    from ltsoups.compare.report import ComparisonReport
    from ltsoups.merge_search import SoupSearch
    from ltsoups.stages.evaluate import ResultEntry

# Piped or redirected, rich would squeeze tables into 80 columns (every cell "1.…"): lines as long as they need,
# unless $COLUMNS says otherwise.
PIPED_WIDTH = 10_000


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=stderr)


console = _console()
error_console = _console(stderr=True)


def plan_table(
    rows: Sequence[FactorSummary], total: int, members: Sequence[StepBudget], head: StepBudget | None
) -> Table:
    """One row per factor (its subsets and one member's steps and warmup), then CR's when it runs."""
    table = Table(title=f"Subsample plan ({total:,} training samples)")
    for column in ("factor", "cap", "subset size", "share %", "rho", "members", "steps", "warmup % (steps)"):
        table.add_column(column, justify="right")
    for row, budget in zip(rows, members, strict=True):
        table.add_row(
            label if (label := factor_label(row.factor)) == str(row.factor) else f"{label} = {row.factor}",
            "-" if row.cap is None else str(row.cap),
            f"{row.size:,}",
            f"{row.share:.2f}",
            f"{row.rho:g}",
            str(row.members),
            f"{budget.steps:,}",
            _warmup(budget),
        )
    if head is not None:
        table.add_row("CR", "-", f"{total:,}", "100.00", "", "", f"{head.steps:,}", _warmup(head))
    return table


def _warmup(budget: StepBudget) -> str:
    share = f"{budget.warmup_share:.0f} ({budget.warmup})"
    return f"[yellow]{share}[/yellow]" if budget.warning("") is not None else share


def budget_warnings(members: Sequence[StepBudget], head: StepBudget | None) -> list[str]:
    """The warmup warnings of the members (section train) and CR (section retrain_head)."""
    found = [budget.warning("train") for budget in members]
    if head is not None:
        found.append(head.warning("retrain_head"))
    return [warning for warning in found if warning is not None]


def plugins_table(registry: PluginRegistry) -> Table:
    table = Table(title="Installed plugins")
    for column in ("group", "name", "provided by", "description"):
        table.add_column(column)
    for kind in PluginKind:
        for entry in registry.entries(kind):
            try:
                description = escape(entry.load().description)  # e.g. "pip install 'ltsoups[ray]'" is no markup
            except Exception as err:
                description = f"[red]cannot load: {escape(str(err))}[/red]"
            table.add_row(kind.group, entry.name, entry.distribution, description)
    return table


def params_table(kind: PluginKind, entry: PluginEntry, description: str, params: Sequence[ParamDoc]) -> Table:
    """A plugin's params, one row each; the caption says how a params file names them."""
    table = Table(
        title=f"{kind.singular} {entry.name} ({entry.distribution}): {escape(description)}",
        caption=f"params.yaml: {{name: {entry.name}, params: {{<param>: <value>, ...}}}}" if params else "no params",
    )
    for column in ("param", "type", "default", "description"):
        table.add_column(column)
    for param in params:
        table.add_row(param.name, escape(param.type), escape(param.default), escape(param.description))
    return table


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_table(rows: Sequence[tuple[str, Mapping[str, float]]], title: str) -> Table:
    """One row per model: accuracy overall, balanced and per shot group (percent)."""
    columns = ("overall", "balanced", "many", "medium", "few")
    table = Table(title=title)
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in rows:
        table.add_row(name, *(_fmt(values.get(column)) for column in columns))
    return table


CALIBRATION_COLUMNS = (
    ("T", "temperature", 3),
    ("NLL", "nll", 3),
    ("ECE %", "ece", 2),
    ("Brier", "brier", 3),
    ("NLL head", "nll_head", 3),
    ("NLL tail", "nll_tail", 3),
    ("ECE head", "ece_head", 2),
    ("ECE tail", "ece_tail", 2),
    ("Brier head", "brier_head", 3),
    ("Brier tail", "brier_tail", 3),
)
"""Overall and on head / tail classes: the paper's Table 1."""
SHOT_GROUP_CALIBRATION_COLUMNS = tuple(
    (f"{label} {group}", f"{key}_{group}", digits)
    for label, key, digits in (("NLL", "nll", 3), ("ECE", "ece", 2), ("Brier", "brier", 3))
    for group in ("many", "medium", "few")
)


def analyses_tables(entries: Sequence[ResultEntry]) -> list[Table]:
    """Per model: calibration overall and on head / tail classes with ||theta - theta_0||; then per shot group."""
    main = Table(title="Calibration after temperature scaling (test split; head: > data.thresholds.head classes)")
    groups = Table(title="Calibration after temperature scaling, per shot group (test split)")
    for table, columns in ((main, CALIBRATION_COLUMNS), (groups, SHOT_GROUP_CALIBRATION_COLUMNS)):
        table.add_column("model")
        for header, _, _ in columns:
            table.add_column(header, justify="right")
    main.add_column("||Δθ||", justify="right")
    main.add_column("||Δθ||/||θ0|| %", justify="right")
    for entry in entries:
        calibration, change = entry.calibration or {}, entry.weight_change or {}
        relative = change.get("weight_change_relative")
        main.add_row(
            entry.model,
            *(_fmt(calibration.get(key), digits) for _, key, digits in CALIBRATION_COLUMNS),
            _fmt(change.get("weight_change"), 3),
            _fmt(None if relative is None else 100 * relative, 3),
        )
        groups.add_row(
            entry.model, *(_fmt(calibration.get(key), digits) for _, key, digits in SHOT_GROUP_CALIBRATION_COLUMNS)
        )
    return [main, groups]


def comparison_tables(report: ComparisonReport) -> list[Table]:
    """Accuracy over seeds with the paired differences from the reference, calibration and weight change, cost."""
    from ltsoups.compare.report import ACCURACY, mean_std, paired_row, paired_text, search_cost_text

    accuracy = Table(
        title=f"Test accuracy (%), mean ± std over {report.seeds_text}; Δ from {report.reference}: paired, "
        f"95% bootstrap interval, p"
    )
    accuracy.add_column("method")
    for column in (*ACCURACY, "balanced 95% t-interval", "Δ balanced", "Δ few"):
        accuracy.add_column(column, justify="right")
    for m in report.methods:
        balanced = m.metrics.get("balanced")
        interval = "-" if balanced is None or balanced.low is None else f"[{balanced.low:.2f}, {balanced.high:.2f}]"
        accuracy.add_row(
            m.method,
            *(mean_std(m.metrics.get(key)) for key in ACCURACY),
            interval,
            paired_text(paired_row(report, m.method, "balanced")),
            paired_text(paired_row(report, m.method, "few")),
        )
    analyses = Table(title="Calibration after temperature scaling (mean ± std), and weight change")
    analyses.add_column("method")
    for header, _, _ in CALIBRATION_COLUMNS:
        analyses.add_column(header, justify="right")
    analyses.add_column("||Δθ||/||θ0|| %", justify="right")
    for m in report.methods:
        relative = m.metrics.get("weight_change_relative")
        analyses.add_row(
            m.method,
            *(mean_std(m.metrics.get(key), digits) for _, key, digits in CALIBRATION_COLUMNS),
            "-" if relative is None else f"{100 * relative.mean:.3f}",
        )
    cost = Table(title="Training cost per run (every training the method needs, shared or not), mean over seeds")
    cost.add_column("method")
    for header in (
        "trainings",
        "steps",
        "images seen",
        "train s",
        "peak memory MB",
        "models at inference",
        "search: folds / val passes",
    ):
        cost.add_column(header, justify="right")
    for m in report.methods:
        peak = m.cost.get("peak_memory_bytes")
        cost.add_row(
            m.method,
            *(
                f"{m.cost[key].mean:,.0f}" if key in m.cost else "-"
                for key in ("trainings", "steps", "samples", "seconds")
            ),
            "-" if peak is None else f"{peak.mean / 2**20:,.0f}",
            str(m.models_at_inference),
            search_cost_text(m),
        )
    return [accuracy, analyses, cost]


def methods_table(methods: Iterable[Method]) -> Table:
    table = Table(title="Methods of `ltsoups compare` (settings apply over your params, in order)")
    for column in ("method", "description", "settings"):
        table.add_column(column)
    for method in methods:
        table.add_row(method.name, method.description, "\n".join(method.settings) or "(your params as they are)")
    return table


def search_table(search: SoupSearch) -> Table:
    """The search's scores over the grid of lambdas, one row per N (lambda-n) or per ascent step; picks bold."""
    rows = search.rows()
    lambdas = sorted({lam for row in rows for lam in row.scores})
    table = Table(title=f"Soup search: validation {search.metric.value} accuracy (%)")
    table.add_column(search.row_header)
    for lam in lambdas:
        table.add_column(f"λ {lam:g}", justify="right")
    for row in rows:
        cells = []
        for lam in lambdas:
            text = f"{row.scores[lam]:.2f}" if lam in row.scores else "-"
            cells.append(f"[bold green]{text}[/bold green]" if lam == row.picked else text)
        table.add_row(row.label, *cells)
    return table
