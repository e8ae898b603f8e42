"""The one place that talks to MLflow: a client for which a tracking failure costs one warning, never the training."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ltsoups.tracking.settings import shorten_http_retries
from ltsoups.tracking.ui import runs_view_tag

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from ltsoups.tracking.datasets import DatasetInput

log = logging.getLogger("ltsoups.tracking")
_MAX_ERROR = 240
# MLflow's limit on params and tags per log_batch request.
_PARAMS_PER_BATCH = 100
# The experiment's kind as MLflow 3 records it; its UI (3.17) does not use it to pick the view (see ui.py).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
T = TypeVar("T")

MetricPoint = tuple[str, float, int, int]
"""(key, value, timestamp in ms, step)."""


class TrackingSession:
    """Calls MLflow until the first failure, then only counts what it did not log.

    Every request ltsoups makes to MLflow is one of the methods below. A disabled session (no client)
    does nothing and reports nothing. Calls are serialised, so the metric thread and the main thread
    can share one session (and one sqlite store).
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

    # ------------------------------------------------------------------------------- the requests

    def experiment(self, name: str) -> str | None:
        """The id of experiment ``name``, created on first use, tagged as model training with the runs table's
        saved view (a view the user has since overridden is kept)."""

        def get_or_create(client: MlflowClient) -> str:
            tags = {**EXPERIMENT_KIND, **runs_view_tag()}
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                return client.create_experiment(name, tags=tags)
            for key, value in tags.items():
                if experiment.tags.get(key) is None:
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id

        return self.call(f"experiment {name!r}", get_or_create)

    def create_run(
        self, experiment: str, name: str, tags: Mapping[str, str], start_time: int | None = None
    ) -> str | None:
        """A new RUNNING run, started at ``start_time`` (ms since the epoch; None: now); its id."""
        run = self.call(
            f"{name} run",
            lambda client: client.create_run(experiment, start_time=start_time, tags=dict(tags), run_name=name),
        )
        return None if run is None else run.info.run_id

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

    def log_params(self, run_id: str, params: Mapping[str, str], what: str) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            chunk = items[start : start + _PARAMS_PER_BATCH]
            self.call(f"params of {what}", lambda client, chunk=chunk: client.log_batch(run_id, params=chunk))

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint], what: str) -> None:
        """Metric values in one request (MLflow takes up to 1000 per request)."""
        from mlflow.entities import Metric

        metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in points]
        if metrics:
            self.call(what, lambda client: client.log_batch(run_id, metrics=metrics), count=len(metrics))

    def log_values(self, run_id: str, values: Mapping[str, float], what: str, step: int = 0) -> None:
        """Metrics known at once (not a training curve), in one request."""
        now = int(time.time() * 1000)
        self.log_metrics(
            run_id, [(key, float(value), now, step) for key, value in values.items()], f"metrics of {what}"
        )

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput], what: str) -> None:
        """Dataset inputs of the run, each with its ``mlflow.data.context`` tag."""
        from mlflow.entities import Dataset, InputTag
        from mlflow.entities import DatasetInput as MlflowInput

        entities = [
            MlflowInput(
                Dataset(data.name, data.digest, "local", data.source_json, profile=json.dumps(data.profile)),
                tags=[InputTag("mlflow.data.context", data.context)],
            )
            for data in inputs
        ]
        if entities:
            self.call(what, lambda client: client.log_inputs(run_id, datasets=entities))

    def log_artifact(self, run_id: str, path: Path, folder: str | None, what: str) -> None:
        self.call(what, lambda client: client.log_artifact(run_id, str(path), folder))

    def log_dict(self, run_id: str, value: Any, file: str, what: str) -> None:
        self.call(what, lambda client: client.log_dict(run_id, value, file))

    def log_table(self, run_id: str, columns: Mapping[str, list[Any]], file: str, what: str) -> None:
        self.call(what, lambda client: client.log_table(run_id, dict(columns), file))

    def set_tag(self, run_id: str, key: str, value: str, what: str) -> None:
        self.call(what, lambda client: client.set_tag(run_id, key, value))

    def delete_tag(self, run_id: str, key: str, what: str) -> None:
        self.call(what, lambda client: client.delete_tag(run_id, key))

    def set_running(self, run_id: str, what: str) -> None:
        self.call(what, lambda client: client.update_run(run_id, status="RUNNING"))

    def terminate(self, run_id: str, status: str, what: str) -> None:
        """End a run: FINISHED, FAILED or KILLED."""
        self.call(what, lambda client: client.set_terminated(run_id, status=status))

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
