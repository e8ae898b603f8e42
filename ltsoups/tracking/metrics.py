"""A training's MLflow run on a background thread: opened there, fed step metrics in batches.

A request to a tracking server costs about 0.1 s; the training only appends to a queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ltsoups.tracking.session import MetricPoint, TrackingSession

# MLflow accepts at most 1000 metrics per log_batch request.
MAX_BATCH = 1000


class MetricStream:
    """Opens a run with ``open_run`` on its own thread, then sends the queued (key, value, step) every
    ``interval`` seconds, or at once when a full batch is waiting, and the rest on close.

    Args:
        what: names the metrics in the "not logged" warning, e.g. "step metrics of member f1-r0".
    """

    def __init__(
        self, session: TrackingSession, open_run: Callable[[], str | None], what: str, interval: float = 5.0
    ) -> None:
        self.session, self.what, self.interval = session, what, interval
        self.run_id: str | None = None
        self._pending: list[MetricPoint] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if session.enabled:
            self._thread = threading.Thread(target=self._work, args=(open_run,), name=f"mlflow {what}", daemon=True)
            self._thread.start()

    def log(self, key: str, value: float, step: int) -> None:
        if self._thread is None:
            return
        with self._wake:
            self._pending.append((key, float(value), int(time.time() * 1000), step))
            if len(self._pending) >= MAX_BATCH:
                self._wake.notify()

    def close(self) -> str | None:
        """Send what is queued, stop the thread; the run's id (None when it could not be opened)."""
        if self._thread is not None:
            with self._wake:
                self._closed = True
                self._wake.notify()
            self._thread.join()
            self._thread = None
        return self.run_id

    def _work(self, open_run: Callable[[], str | None]) -> None:
        self.run_id = run_id = open_run()
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closed or len(self._pending) >= MAX_BATCH, timeout=self.interval)
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                finished = self._closed and not self._pending
            if batch and run_id is None:
                self.session.dropped(self.what, len(batch))
            elif batch and run_id is not None:
                self._send(run_id, batch)
            if finished:
                return

    def _send(self, run_id: str, batch: list[MetricPoint]) -> None:
        self.session.log_metrics(run_id, batch, self.what)
