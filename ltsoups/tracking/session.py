"""An MLflow client for which a tracking failure costs one warning, never the training."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ltsoups.tracking.settings import shorten_http_retries

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("ltsoups.tracking")
_MAX_ERROR = 240
T = TypeVar("T")


class TrackingSession:
    """Calls MLflow until the first failure, then only counts what it did not log.

    A disabled session (no client) does nothing and reports nothing. Calls are serialised, so the
    metric thread and the main thread can share one session (and one sqlite store).
    """

    def __init__(self, uri: str, client: MlflowClient | None, error: str | None = None) -> None:
        self.uri, self.client = uri, client
        self.error = error
        self.lost: Counter[str] = Counter()
        self._lock = threading.RLock()

    @classmethod
    def connect(cls, uri: str) -> TrackingSession:
        """A session on ``uri``; a store that cannot be opened gives a broken session, not an error."""
        shorten_http_retries()
        from mlflow import MlflowClient

        try:
            return cls(uri, MlflowClient(tracking_uri=uri))
        except Exception as err:  # whatever MLflow raises, training must go on
            session = cls(uri, None, _describe(err))
            session._warn()
            return session

    @classmethod
    def disabled(cls) -> TrackingSession:
        return cls("", None)

    @property
    def enabled(self) -> bool:
        return self.client is not None or self.error is not None

    def call(self, what: str, action: Callable[[MlflowClient], T], count: int = 1) -> T | None:
        """``action(client)``, or None once tracking is off or broken (then ``what`` is counted as not logged)."""
        with self._lock:
            if not self.enabled:
                return None
            if self.client is None or self.error is not None:
                self.lost[what] += count
                return None
            try:
                return action(self.client)
            except Exception as err:  # whatever MLflow raises, training must go on
                self.error = _describe(err)
                self.lost[what] += count
                self._warn()
                return None

    def _warn(self) -> None:
        log.warning(
            "MLflow tracking at %s failed (%s); training goes on, this process logs nothing more", self.uri, self.error
        )

    def dropped(self, what: str, count: int = 1) -> None:
        """Count ``what`` as not logged, if tracking is on but broken."""
        with self._lock:
            if self.error is not None:
                self.lost[what] += count

    def find_run(self, run_id: str) -> Run | None:
        """The run, or None when the store has no such run (not a tracking failure)."""
        from mlflow.exceptions import MlflowException

        def get(client: MlflowClient) -> Run | None:
            try:
                return client.get_run(run_id)
            except MlflowException as err:
                if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return None
                raise

        return self.call("run lookup", get)

    def report(self) -> None:
        """Warn once about everything this process could not log."""
        if self.lost:
            items = "; ".join(f"{what} ({count})" if count > 1 else what for what, count in self.lost.items())
            log.warning("not logged to MLflow at %s: %s", self.uri, items)
            self.lost.clear()


def _describe(err: Exception) -> str:
    """Type and first line of the error, cut short: MLflow's connection errors run to a paragraph."""
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {first_line}"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."
