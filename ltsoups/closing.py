"""Closing what a block opened with the error that ended the block: trackers and a member's tracking hooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


class Closable(Protocol):
    def close(self, error: BaseException | None = None) -> None: ...


Opened = TypeVar("Opened", bound=Closable)


@contextmanager
def closed_after(opened: Opened) -> Iterator[Opened]:
    """``opened`` for the block, closed after it: with the exception that ends the block, which propagates
    (a tracker's runs end FAILED, or KILLED on Ctrl-C), or cleanly."""
    try:
        yield opened
    except BaseException as err:
        opened.close(err)
        raise
    opened.close()
