"""Rich progress bars that follow training runs: one training, or every member of a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from ltsoups.contracts import Worker
    from ltsoups.stages.member import MemberOutput
    from ltsoups.training.loop import TrainingObserver


def make_progress() -> Progress:
    """One row per training: its name, where it runs (members), its steps, loss and learning rate."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def step_metrics(loss: float, lr: float) -> str:
    return f"loss {loss:.4f}  lr {lr:.2e}"


class ProgressObserver:
    """TrainingObserver that advances one task of a shared rich Progress."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress, self.description = progress, description
        self.task: TaskID | None = None

    def on_start(self, total_steps: int, first_step: int) -> None:
        # The bar appears only once training really starts, not for a stage that fails while loading.
        self.task = self.progress.add_task(
            self.description, total=total_steps, completed=first_step, status="", metrics=""
        )

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.progress.update(self.task, completed=step, metrics=step_metrics(loss, lr))

    def on_validation(self, step: int, score: float) -> None:
        self.progress.console.log(f"{self.description}: step {step} val balanced accuracy {score:.2f}")


class MemberBoard:
    """A MemberFollower drawing every member of a batch: queued, up to date, training where, done or failed."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.rows: dict[str, TaskID] = {}
        self.attempts: dict[str, int] = {}

    def planned(self, pending: Sequence[str], up_to_date: Sequence[str]) -> None:
        for member in up_to_date:
            self._add(member, "[dim]up to date[/dim]", total=1, completed=1)
        for member in pending:
            self._add(member, "queued", total=None, completed=0)

    def started(self, member: str, worker: Worker) -> TrainingObserver:
        attempt = self.attempts[member] = self.attempts.get(member, 0) + 1
        again = f"[yellow]attempt {attempt}[/yellow] " if attempt > 1 else ""
        row = self.rows[member] if member in self.rows else self._add(member, "", total=None, completed=0)
        self.progress.update(row, status=f"{again}{worker}")
        self.progress.start_task(row)
        return MemberRowObserver(self.progress, row, member)

    def finished(self, member: str, output: MemberOutput) -> None:
        row = self.rows[member]
        self.progress.update(row, status="[green]done[/green]", completed=output.result.steps)

    def failed(self, member: str, error: str) -> None:
        self.progress.update(self.rows[member], status="[red]failed[/red]")
        self.progress.console.log(f"member {member} failed: {error}", markup=False)

    def _add(self, member: str, status: str, total: int | None, completed: int) -> TaskID:
        self.rows[member] = self.progress.add_task(
            f"member {member}", start=False, total=total, completed=completed, status=status, metrics=""
        )
        return self.rows[member]


class MemberRowObserver:
    """Follows one attempt at a member on its board row."""

    def __init__(self, progress: Progress, row: TaskID, member: str) -> None:
        self.progress, self.row, self.member = progress, row, member

    def on_start(self, total_steps: int, first_step: int) -> None:
        self.progress.update(self.row, total=total_steps, completed=first_step)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.progress.update(self.row, completed=step, metrics=step_metrics(loss, lr))

    def on_validation(self, step: int, score: float) -> None:
        self.progress.console.log(f"member {self.member}: step {step} val balanced accuracy {score:.2f}")


class ImageCheckBar:
    """An ImageCheckProgress drawn as one row: every image file of the dataset decoded once before training."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        if total:  # images held in memory (the embedded task, CIFAR): nothing to read, no row
            self.task = self.progress.add_task("checking images", total=total, status="", metrics="")

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, count)
