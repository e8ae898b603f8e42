"""MetricStream: the run opens on another thread while the training logs, which sends the step metrics in batches;
close() returns once every value is in the store."""

from __future__ import annotations

import threading
from pathlib import Path

from ltsoups.tracking.metrics import MetricStream
from ltsoups.tracking.session import TrackingSession


def test_values_logged_before_and_after_the_run_opens_all_reach_the_store(tmp_path: Path) -> None:
    session = TrackingSession.connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = session.experiment("stream")
    assert experiment is not None
    may_open, opened_by = threading.Event(), []

    def open_run() -> str | None:
        # A server slower than the training's first steps; had log() waited for the run, this would time out.
        opened_by.append((threading.current_thread().name, may_open.wait(timeout=60)))
        return session.create_run(experiment, "member f1-r0", {})

    stream = MetricStream(session, open_run, "step metrics")
    for step in range(1, 1501):
        if step == 700:
            may_open.set()  # the first 699 steps were logged while the run was not open: log() did not wait
        stream.log("loss", 1.0 / step, step)
        stream.log("lr", 0.1, step)
    run_id = stream.close()
    assert run_id is not None
    assert opened_by == [(opened_by[0][0], True)] and opened_by[0][0] != threading.current_thread().name
    history = {key: session.client.get_metric_history(run_id, key) for key in ("loss", "lr")}
    assert sorted(metric.step for metric in history["loss"]) == list(range(1, 1501))
    assert sorted(metric.step for metric in history["lr"]) == list(range(1, 1501))
    assert {metric.step: metric.value for metric in history["loss"]}[4] == 0.25
    assert session.error is None and not session.lost


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
