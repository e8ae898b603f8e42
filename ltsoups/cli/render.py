"""Rich tables for plans, plugins and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ltsoups.plan import FactorSummary
from ltsoups.registry import PluginKind, PluginRegistry

if TYPE_CHECKING:
    from ltsoups.merge_search import SoupSearch

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


def search_table(search: SoupSearch) -> Table:
    """Validation score of every soup of the grid: rows N, columns lambda; the chosen one bold."""
    lambdas = sorted({point.lam for point in search.points})
    table = Table(title=f"Soup search: validation {search.metric.value} accuracy (%)")
    table.add_column("N (up to factor)")
    for lam in lambdas:
        table.add_column(f"λ {lam:g}", justify="right")
    for n in sorted({point.n for point in search.points}):
        points = {point.lam: point for point in search.points if point.n == n}
        cells = []
        for lam in lambdas:
            point = points[lam]
            text = f"{search.score(point):.2f}"
            cells.append(f"[bold green]{text}[/bold green]" if point == search.chosen else text)
        table.add_row(f"{n} ({points[lambdas[0]].upto_factor})", *cells)
    return table
