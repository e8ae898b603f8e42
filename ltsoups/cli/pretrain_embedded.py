"""`ltsoups pretrain-embedded`: run the recipe that produces the shipped ``ltsoups-mini`` weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ltsoups.embedded.recipe import PretrainConfig

if TYPE_CHECKING:
    from ltsoups.embedded.pretrain import PretrainReport


def _help(field: str) -> str:
    return str(PretrainConfig.model_fields[field].description)


def pretrain_embedded(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the weights (.safetensors) and sidecar.")
    ] = Path("ltsoups-mini.safetensors"),
    seed: Annotated[int | None, typer.Option(help=_help("seed"))] = None,
    steps: Annotated[int | None, typer.Option(help=_help("steps"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_help("batch_size"))] = None,
    num_pairs: Annotated[int | None, typer.Option(help=_help("num_pairs"))] = None,
    eval_pairs: Annotated[int | None, typer.Option(help=_help("eval_pairs"))] = None,
    lr: Annotated[float | None, typer.Option(help=_help("lr"))] = None,
    weight_decay: Annotated[float | None, typer.Option(help=_help("weight_decay"))] = None,
    warmup_steps: Annotated[int | None, typer.Option(help=_help("warmup_steps"))] = None,
    hold_out_task_classes: Annotated[bool | None, typer.Option(help=_help("hold_out_task_classes"))] = None,
    task_seed: Annotated[int | None, typer.Option(help=_help("task_seed"))] = None,
    weights_dtype: Annotated[Literal["float16", "float32"] | None, typer.Option(help=_help("weights_dtype"))] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch intra-op threads (default: torch's choice).")
    ] = None,
) -> None:
    """Pretrain the embedded mini-CLIP from scratch on the synthetic world and save its weights."""
    console = Console()
    options = {
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "num_pairs": num_pairs,
        "eval_pairs": eval_pairs,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_steps": warmup_steps,
        "hold_out_task_classes": hold_out_task_classes,
        "task_seed": task_seed,
        "weights_dtype": weights_dtype,
    }
    try:
        config = PretrainConfig(**{name: value for name, value in options.items() if value is not None})
    except ValidationError as err:
        for problem in err.errors():
            field = ".".join(str(part) for part in problem["loc"]) or "config"
            console.print(f"[red]error:[/red] {field}: {problem['msg']}", highlight=False)
        raise typer.Exit(2) from err
    import torch

    from ltsoups.embedded.pretrain import pretrain

    if threads is not None:
        torch.set_num_threads(threads)

    progress = Progress(
        TextColumn("[bold]pretraining ltsoups-mini"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("pretrain", total=config.steps, loss=float("nan"))
        report = pretrain(
            config, out, on_step=lambda step, _total, loss: progress.update(task, completed=step, loss=loss)
        )
    console.print(_report_table(report))


def _report_table(report: PretrainReport) -> Table:
    table = Table(title="ltsoups-mini pretraining")
    table.add_column("metric")
    table.add_column("value", justify="right")
    zero_shot = report.zero_shot
    rows = [
        ("contrastive loss, initial", f"{report.initial_loss:.3f}"),
        ("contrastive loss, final", f"{report.final_loss:.3f}"),
        ("zero-shot balanced accuracy", f"{100 * zero_shot.balanced_accuracy:.1f}%"),
        ("  many-shot classes", _percent(zero_shot.many)),
        ("  medium-shot classes", _percent(zero_shot.medium)),
        ("  few-shot classes", _percent(zero_shot.few)),
        ("wall time", f"{report.wall_seconds:.0f} s ({report.torch_threads} threads)"),
        ("weights", report.weights_path),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
