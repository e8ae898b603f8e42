"""`ltsoups predict`: classify image files with the run's final model, a checkpoint or a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ltsoups.cli.common import ParamsOption, SetOption, cli_config, reports_errors
from ltsoups.cli.model_source import ModelOrRegistryOption

if TYPE_CHECKING:
    from ltsoups.inference.predict import PredictionRun


@reports_errors
def predict(
    inputs: Annotated[
        list[Path], typer.Argument(metavar="INPUT...", help="image files, folders (recursive) or list files")
    ],
    model: ModelOrRegistryOption = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="classes reported per image")] = 1,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write .csv or .jsonl (JSON lines) instead of a table")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="images per batch on the device")] = 256,
    workers: Annotated[int | None, typer.Option(min=0, help="image loader processes; default: runtime.workers")] = None,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Classify images on runtime.device at runtime.precision: top-k classes and probabilities per image.
    Unreadable images are named and skipped; the command then exits 1 with their count."""
    from ltsoups.cli.model_source import load_model_option
    from ltsoups.cli.progress import make_progress
    from ltsoups.cli.render import error_console
    from ltsoups.inference.images import image_paths
    from ltsoups.inference.predict import predict_files
    from ltsoups.inference.prediction_files import check_output_suffix, write_predictions
    from ltsoups.runtime import Runtime

    overrides = [*(set_ or []), *([f"runtime.workers={workers}"] if workers is not None else [])]
    config = cli_config(params, overrides)
    if out is not None:
        check_output_suffix(out)
    paths = image_paths(inputs)
    loaded = load_model_option(model, config)
    with make_progress() as progress:
        task = progress.add_task("predict", total=len(paths), status="", metrics="")
        run = predict_files(
            loaded, paths, Runtime.of(config.runtime), top_k, batch_size, lambda n: progress.advance(task, n)
        )
    if out is not None:
        write_predictions(out, run.predictions, top_k)
        error_console.print(f"wrote {out}: {len(run.predictions):,} images", markup=False, highlight=False)
    else:
        _print_table(run)
    for bad in run.unreadable:
        error_console.print(f"[red]unreadable:[/red] {bad.path}: {bad.reason}", markup=True, highlight=False)
    if run.unreadable:
        error_console.print(f"[red]error:[/red] {len(run.unreadable)} of {len(paths)} images could not be read")
        raise typer.Exit(1)


def _print_table(run: PredictionRun) -> None:
    from rich.table import Table

    from ltsoups.cli.render import console

    table = Table("path", "top classes (probability)")
    for p in run.predictions:
        table.add_row(str(p.path), ", ".join(f"{c} ({v:.3f})" for c, v in zip(p.classes, p.probabilities, strict=True)))
    console.print(table)
