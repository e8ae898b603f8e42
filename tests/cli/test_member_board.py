"""The member board draws one row per member, whatever rich numbers its rows from."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress, TextColumn

from ltsoups.cli.progress import MemberBoard
from ltsoups.contracts import Worker


def _board() -> tuple[MemberBoard, Progress]:
    progress = Progress(
        TextColumn("{task.description}"), TextColumn("{task.fields[status]}"), console=Console(file=io.StringIO())
    )
    return MemberBoard(progress), progress


def test_a_started_member_keeps_the_row_it_was_queued_on() -> None:
    board, progress = _board()
    board.planned(["f1-r0", "f1-r1"], [])  # f1-r0's row is rich's task id 0, which is falsy
    for pid, member in enumerate(("f1-r0", "f1-r1")):
        board.started(member, Worker(pid=pid, host="here"))
    assert [(task.description, task.fields["status"]) for task in progress.tasks] == [
        ("member f1-r0", "pid 0 on here"),
        ("member f1-r1", "pid 1 on here"),
    ]


def test_a_member_started_without_a_plan_gets_a_row_of_its_own() -> None:
    board, progress = _board()
    board.planned(["f1-r0"], [])
    board.started("f1-r1", Worker(pid=1, host="here"))
    assert [task.description for task in progress.tasks] == ["member f1-r0", "member f1-r1"]
