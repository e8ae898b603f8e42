"""A training's MLflow run: opened on a thread of its own, then fed step metrics through MLflow's asynchronous
logging, which sends them on MLflow's threads.

A request to a tracking server costs about 0.1 s; the training neither waits for the run to open nor
for its metrics to be sent, only for the last of them when the training ends. MLflow's queue sends each
handed-over batch as one request (it merges nothing unless MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS is set,
and then it sleeps that long before each send), so values are handed over in chunks: a full request's
worth, or what a few seconds gathered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ltsoups.tracking.session import MetricPoint, PendingMetrics, TrackingSession

# MLflow accepts at most 1000 metrics per request.
CHUNK = 1000


class MetricStream:
    """Opens a run with ``open_run`` on its own thread; logged values are handed to MLflow's asynchronous logging
    in chunks (CHUNK values, or every ``interval`` seconds) once the run is open; ``close`` hands over the rest
    and waits until MLflow has sent them all.

    Args:
        what: names the metrics in the "not logged" warning, e.g. "step metrics of member f1-r0".
    """

    def __init__(
        self, session: TrackingSession, open_run: Callable[[], str | None], what: str, interval: float = 5.0
    ) -> None:
        self.session, self.what, self.interval = session, what, interval
        self.run_id: str | None = None
        self._opened = False
        self._pending: list[MetricPoint] = []
        self._handed_at = time.monotonic()
        self._sent: list[PendingMetrics] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if session.enabled:
            self._thread = threading.Thread(target=self._open, args=(open_run,), name=f"mlflow {what}", daemon=True)
            self._thread.start()

    def log(self, key: str, value: float, step: int) -> None:
        if self._thread is None:
            return
        now = time.monotonic()
        with self._lock:
            self._pending.append((key, float(value), int(time.time() * 1000), step))
            due = len(self._pending) >= CHUNK or now - self._handed_at >= self.interval
            if not (self._opened and due):
                return
            chunk, self._pending, self._handed_at = self._pending, [], now
        self._send(chunk)

    def close(self) -> str | None:
        """Wait until every value is sent (or counted as not logged); the run's id (None when it could not open)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            rest, self._pending = self._pending, []
            self._send(rest)
            for pending in self._sent:
                self.session.wait_for(pending)
            self._sent = []
        return self.run_id

    def _open(self, open_run: Callable[[], str | None]) -> None:
        run_id = open_run()
        with self._lock:
            self.run_id, self._opened = run_id, True

    def _send(self, points: list[MetricPoint]) -> None:
        if not points:
            return
        if self.run_id is None:
            self.session.dropped(self.what, len(points))
            return
        for start in range(0, len(points), CHUNK):
            pending = self.session.log_metrics_async(self.run_id, points[start : start + CHUNK], self.what)
            if pending is not None:
                with self._lock:
                    self._sent.append(pending)
