"""`ltsoups compare`: methods side by side over seeds, its report and the methods it knows."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from ltsoups.cli.common import (
    ParamsOption,
    RunnerOption,
    SetOption,
    cli_config,
    cli_layers,
    flag,
    reports_errors,
    with_runner,
)

compare_app = typer.Typer(
    help="Run methods side by side over seeds on the same data and evaluation; report, plot, MLflow.",
    invoke_without_command=True,
)
OutOption = Annotated[Path | None, typer.Option("--out", help="the comparison's folder (default: <workdir>/compare)")]
MethodsFileOption = Annotated[
    Path | None, typer.Option("--methods-file", help="a methods file of your own, over the shipped one")
]
ResamplesOption = Annotated[int, typer.Option(help="paired bootstrap resamples of the test images")]


@compare_app.callback()
@reports_errors
def compare(
    ctx: typer.Context,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="a method to run (repeatable; default: all)")
    ] = None,
    methods_file: MethodsFileOption = None,
    seeds: Annotated[
        int | None,
        typer.Option(help="S: seeds seed, seed + 1, ..., seed + S - 1 of your params (default: compare.seeds)"),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="the method every other is compared with, paired (default: lt-soups)")
    ] = None,
    resamples: ResamplesOption = 10_000,
    grid: Annotated[bool, flag("--grid", help="one comparison per --eta of the dataset's two-axis profile")] = False,
    eta: Annotated[
        list[float] | None,
        typer.Option(help="with --grid: head-to-tail ratios (repeatable; default 19, 3, 1, 1/3, 1/19)"),
    ] = None,
    out: OutOption = None,
    runner: RunnerOption = None,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Run every chosen method at S seeds (members, theta_0 and logits shared where identical), then report.

    Writes <out>/runs/<method>/seed-<s>/ (a workdir each, logits included), <out>/report/ (summary.json,
    metrics.json, summary.csv, paired.csv, comparison.md, tradeoff.png, groups.png) and one MLflow parent
    run with a child per method x seed. `ltsoups compare report` prints it again; `ltsoups compare methods`
    lists the methods.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ltsoups.cli.progress import MemberBoard, ProgressObserver, make_progress
    from ltsoups.cli.render import comparison_tables, console
    from ltsoups.compare.run import ComparisonDisplay
    from ltsoups.compare.suite import PAPER_ETAS, CompareSettings, compare_grid
    from ltsoups.compare.suite import compare as compare_methods
    from ltsoups.tracking.comparison import comparison_tracking

    settings = CompareSettings(tuple(method or ()) or None, methods_file, seeds, reference, resamples)
    settings.chosen()  # an unknown method fails before anything runs
    overrides = with_runner(set_, runner)
    layers, source = cli_layers(params, overrides)
    root = out or Path(cli_config(params, overrides).workdir) / "compare"
    with make_progress() as progress:
        display = ComparisonDisplay(MemberBoard(progress), functools.partial(ProgressObserver, progress), console.log)
        if grid:
            points, files = compare_grid(
                layers, source, root, settings, eta or PAPER_ETAS, display, comparison_tracking
            )
            for value, report in points:
                console.rule(f"eta {value:.4g}")
                for table in comparison_tables(report):
                    console.print(table)
        else:
            outcome = compare_methods(layers, source, root, settings, display, comparison_tracking)
            files = outcome.files
            for table in comparison_tables(outcome.report):
                console.print(table)
    for path in files:
        console.print(f"wrote {path}")


@compare_app.command("report")
@reports_errors
def compare_report(
    resamples: ResamplesOption = 10_000,
    out: OutOption = None,
    grid: Annotated[
        bool, flag("--grid", help="a grid's folder: every eta's report, then grid.json and grid.png")
    ] = False,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Recompute the report of a comparison (or of every comparison of a grid) from its saved logits; print it
    and rewrite its files and plots."""
    from ltsoups.cli.render import comparison_tables, console
    from ltsoups.compare.suite import CompareSettings, grid_report, write_outputs

    root = out or Path(cli_config(params, set_).workdir) / "compare"
    settings = CompareSettings(resamples=resamples)
    if grid:
        points, files = grid_report(root, settings)
    else:
        outcome = write_outputs(root, settings)
        points, files = [(None, outcome.report)], outcome.files
    for value, report in points:
        if value is not None:
            console.rule(f"eta {value:.4g}")
        for table in comparison_tables(report):
            console.print(table)
    for path in files:
        console.print(f"wrote {path}")


@compare_app.command("methods")
@reports_errors
def compare_methods_list(methods_file: MethodsFileOption = None) -> None:
    """The methods `ltsoups compare` knows: name, what it is, and its settings over your params."""
    from ltsoups.cli.render import console, methods_table
    from ltsoups.compare.methods import load_methods

    console.print(methods_table(load_methods(methods_file).values()))
