"""A rich progress bar that follows a training run."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

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
        self.progress, self.description = progress, description
        self.task: TaskID | None = None

    def on_start(self, total_steps: int, first_step: int) -> None:
        # The bar appears only once training really starts, not for a stage that fails while loading.
        self.task = self.progress.add_task(
            self.description, total=total_steps, completed=first_step, loss=float("nan"), lr=0.0
        )

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.progress.update(self.task, completed=step, loss=loss, lr=lr)

    def on_validation(self, step: int, score: float) -> None:
        self.progress.console.log(f"{self.description}: step {step} val balanced accuracy {score:.2f}")
