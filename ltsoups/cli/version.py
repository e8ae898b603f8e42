"""`ltsoups --version`: the package version and the git commit of the code that runs."""

from __future__ import annotations

from typing import Annotated

import typer


def _print_version(requested: bool) -> None:
    if requested:
        from ltsoups.provenance import code_version

        typer.echo(f"ltsoups {code_version()}")
        raise typer.Exit()


def global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            metavar="",
            help="print the version (and the git commit of a source checkout, '.dirty' with local changes) and exit",
        ),
    ] = False,
) -> None:
    """LT-Soups: subsampled model soups for long-tailed fine-tuning of CLIP."""
