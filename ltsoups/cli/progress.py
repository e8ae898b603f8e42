"""A rich progress bar that follows a training run."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ltsoups.cli.render import console


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class ProgressObserver:
    """TrainingObserver that advances one task of a shared rich Progress."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=None, loss=float("nan"), lr=0.0)

    def on_start(self, total_steps: int, first_step: int) -> None:
        self.progress.update(self.task, total=total_steps, completed=first_step)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.progress.update(self.task, completed=step, loss=loss, lr=lr)

    def on_validation(self, step: int, score: float) -> None:
        self.progress.console.log(f"{self.progress.tasks[self.task].description}: step {step} val balanced {score:.2f}")
