"""MetricStream: the run opens and step metrics leave in batches on a background thread, all by close()."""

from __future__ import annotations

import threading
import time

from ltsoups.tracking.metrics import MAX_BATCH, MetricStream
from ltsoups.tracking.session import TrackingSession


class SlowClient:
    """Records log_batch requests; each takes as long as a request to a real server."""

    def __init__(self, latency: float = 0.1) -> None:
        self.latency, self.batches, self.threads = latency, [], set()

    def log_batch(self, run_id: str, metrics: list) -> None:
        time.sleep(self.latency)
        self.threads.add(threading.current_thread().name)
        self.batches.append((run_id, [(m.key, m.value, m.step) for m in metrics]))


def test_metrics_are_sent_in_batches_by_another_thread() -> None:
    client = SlowClient()
    session = TrackingSession("test", client)  # type: ignore[arg-type]
    opened_by = []

    def open_run() -> str:
        time.sleep(client.latency)
        opened_by.append(threading.current_thread().name)
        return "run-1"

    stream = MetricStream(session, open_run, "step metrics")
    for step in range(1, 1501):
        stream.log("loss", 1.0 / step, step)
        stream.log("lr", 0.1, step)
    assert stream.close() == "run-1"
    sent = [metric for _, batch in client.batches for metric in batch]
    assert len(sent) == 3000
    assert {key for key, _, _ in sent} == {"loss", "lr"}
    assert sorted(step for key, _, step in sent if key == "loss") == list(range(1, 1501))
    assert 3 <= len(client.batches) <= 4  # 1000 per request at most, not one request per value
    assert all(len(batch) <= MAX_BATCH and run_id == "run-1" for run_id, batch in client.batches)
    assert threading.current_thread().name not in client.threads | set(opened_by)


def test_without_a_run_values_are_counted_as_not_logged() -> None:
    session = TrackingSession("test", None, error="ConnectionError: refused")
    stream = MetricStream(session, lambda: None, "step metrics of member f1-r0")
    for step in range(5):
        stream.log("loss", 1.0, step)
    assert stream.close() is None
    assert session.lost == {"step metrics of member f1-r0": 5}


def test_disabled_tracking_starts_no_thread() -> None:
    stream = MetricStream(TrackingSession.disabled(), lambda: "never", "step metrics")
    stream.log("loss", 1.0, 1)
    assert stream.close() is None
    assert not any(thread.name.startswith("mlflow") for thread in threading.enumerate())
