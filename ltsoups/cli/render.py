"""Rich tables for plans, plugins and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from ltsoups.plan import FactorSummary
from ltsoups.registry import PluginKind, PluginRegistry
from ltsoups.training.budget import StepBudget

console = Console()
error_console = Console(stderr=True, soft_wrap=True)


def plan_table(
    rows: Sequence[FactorSummary], total: int, members: Sequence[StepBudget], head: StepBudget | None
) -> Table:
    """One row per factor (its subsets and one member's steps and warmup), then CR's when it runs."""
    table = Table(title=f"Subsample plan ({total:,} training samples)")
    for column in ("factor", "cap", "subset size", "share %", "rho", "members", "steps", "warmup % (steps)"):
        table.add_column(column, justify="right")
    for row, budget in zip(rows, members, strict=True):
        table.add_row(
            f"2^{row.factor.bit_length() - 1} = {row.factor}",
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
                description = entry.load().description
            except Exception as err:
                description = f"[red]cannot load: {err}[/red]"
            table.add_row(kind.group, entry.name, entry.distribution, description)
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


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
