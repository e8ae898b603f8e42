"""Rich tables for plans, plugins and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ltsoups.plan import FactorSummary
from ltsoups.registry import PluginKind, PluginRegistry

console = Console()
error_console = Console(stderr=True, soft_wrap=True)


def plan_table(rows: Sequence[FactorSummary], total: int) -> Table:
    table = Table(title=f"Subsample plan ({total:,} training samples)")
    for column in ("factor", "cap", "subset size", "share %", "rho", "members"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"2^{row.factor.bit_length() - 1} = {row.factor}",
            "-" if row.cap is None else str(row.cap),
            f"{row.size:,}",
            f"{row.share:.2f}",
            f"{row.rho:g}",
            str(row.members),
        )
    return table


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
