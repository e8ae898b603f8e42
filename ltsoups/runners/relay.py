"""Training events of members on remote workers, carried back to the driver that follows them.

A worker sends events to an ``EventRelay`` (a Ray actor the driver owns) without waiting for it; the
driver drains the relay while it waits for the members and replays each event to its follower.
Steps are sent at most every ``interval`` seconds (the latest one), so a fast loop costs no round trips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ltsoups.contracts import MemberFollower, Worker

if TYPE_CHECKING:
    from ltsoups.training.loop import TrainingObserver

STEP_INTERVAL_SECONDS = 0.5


@dataclass
class Following:
    """The driver's side: the observer of each member's current attempt."""

    follower: MemberFollower
    observers: dict[str, TrainingObserver] = field(default_factory=dict)

    def replay(self, events: list[Event]) -> None:
        for event in events:
            event.replay(self)


class Event(Protocol):
    def replay(self, following: Following) -> None: ...


@dataclass(frozen=True)
class AttemptStarted:
    member: str
    worker: Worker

    def replay(self, following: Following) -> None:
        following.observers[self.member] = following.follower.started(self.member, self.worker)


@dataclass(frozen=True)
class TrainingStarted:
    member: str
    total_steps: int
    first_step: int

    def replay(self, following: Following) -> None:
        following.observers[self.member].on_start(self.total_steps, self.first_step)


@dataclass(frozen=True)
class Stepped:
    member: str
    step: int
    loss: float
    lr: float

    def replay(self, following: Following) -> None:
        following.observers[self.member].on_step(self.step, self.loss, self.lr)


@dataclass(frozen=True)
class Validated:
    member: str
    step: int
    score: float

    def replay(self, following: Following) -> None:
        following.observers[self.member].on_validation(self.step, self.score)


class EventRelay:
    """Holds events until the driver drains them (run as a Ray actor)."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def push(self, events: list[Event]) -> None:
        self._events.extend(events)

    def drain(self) -> list[Event]:
        events, self._events = self._events, []
        return events


class RelayObserver:
    """A worker's TrainingObserver: sends its member's events through ``send`` (a non-blocking actor call)."""

    def __init__(
        self, send: Callable[[list[Any]], object], member: str, interval: float = STEP_INTERVAL_SECONDS
    ) -> None:
        self.send, self.member, self.interval = send, member, interval
        self._latest: Stepped | None = None
        self._sent_at = 0.0

    def on_start(self, total_steps: int, first_step: int) -> None:
        self.send([TrainingStarted(self.member, total_steps, first_step)])

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self._latest = Stepped(self.member, step, loss, lr)
        if time.monotonic() - self._sent_at >= self.interval:
            self.flush()

    def on_validation(self, step: int, score: float) -> None:
        self.flush()
        self.send([Validated(self.member, step, score)])

    def flush(self) -> None:
        if self._latest is not None:
            self.send([self._latest])
            self._latest = None
        self._sent_at = time.monotonic()
