"""TrackingSession: the first MLflow failure turns tracking off with a warning; what was not logged is counted."""

from __future__ import annotations

import logging

import pytest

from ltsoups.tracking.session import TrackingSession


class RefusingClient:
    """Stands in for an MlflowClient whose server refuses every request."""

    def __init__(self) -> None:
        self.calls = 0

    def log_batch(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        raise ConnectionError("connection refused")


def test_first_failure_stops_calls_and_later_ones_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    client = RefusingClient()
    session = TrackingSession("http://tracking.invalid", client)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="ltsoups.tracking"):
        assert session.call("params of member f1-r0", lambda c: c.log_batch()) is None
        session.call("step metrics of member f1-r0", lambda c: c.log_batch(), count=1000)
        session.call("step metrics of member f1-r0", lambda c: c.log_batch(), count=24)
        session.dropped("sidecar of member f1-r0")
        session.report()
    assert client.calls == 1
    first, summary = (record.getMessage() for record in caplog.records)
    assert first.startswith("MLflow tracking at http://tracking.invalid failed (ConnectionError: connection refused)")
    assert summary == (
        "not logged to MLflow at http://tracking.invalid: params of member f1-r0; "
        "step metrics of member f1-r0 (1024); sidecar of member f1-r0"
    )


def test_disabled_session_does_nothing_and_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    session = TrackingSession.disabled()
    with caplog.at_level(logging.WARNING, logger="ltsoups.tracking"):
        assert session.call("anything", lambda c: pytest.fail("a disabled session must not call MLflow")) is None
        session.dropped("anything")
        session.report()
    assert caplog.records == []


def test_a_store_that_cannot_open_gives_a_broken_session(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="ltsoups.tracking"):
        session = TrackingSession.connect(f"sqlite:///{blocker}/mlflow.db")
        session.call("member f1-r0 run", lambda c: pytest.fail("no client"))
        session.report()
    assert session.enabled and session.error is not None
    assert caplog.records[-1].getMessage().endswith(": member f1-r0 run")
