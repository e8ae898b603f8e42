"""Runs in the MLflow store: create, continue and end them, and remember them in files for later processes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ltsoups.io.atomic import write_json_atomic
from ltsoups.tracking.session import TrackingSession

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

PARENT_TAG = "mlflow.parentRunId"
# MLflow's limits: params and tags per log_batch request, characters of a tag value.
_PER_BATCH = 100
_MAX_TAG = 8000


@dataclass(frozen=True)
class RunRecord:
    """A run written down beside the outputs, so that another process (a later stage, a resumed training) finds it."""

    run_id: str
    experiment_id: str
    experiment_name: str
    tracking_uri: str
    config_sha256: str

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> RunRecord | None:
        """The record at ``path``; None when there is none or it is unreadable (a new run is then started)."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def experiment_id(session: TrackingSession, name: str) -> str | None:
    """The id of experiment ``name``, created on first use."""

    def get_or_create(client: MlflowClient) -> str:
        experiment = client.get_experiment_by_name(name)
        return experiment.experiment_id if experiment is not None else client.create_experiment(name)

    return session.call(f"experiment {name!r}", get_or_create)


def create_run(
    session: TrackingSession,
    experiment: str,
    name: str,
    tags: dict[str, str],
    params: dict[str, str],
) -> str | None:
    """A new RUNNING run with its tags and params; None when tracking is off or broken."""
    run = session.call(f"{name} run", lambda client: client.create_run(experiment, tags=tags, run_name=name))
    if run is None:
        return None
    run_id = run.info.run_id
    log_params(session, run_id, name, params)
    return run_id


def log_params(session: TrackingSession, run_id: str, name: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(key, value) for key, value in params.items()]
    for start in range(0, len(items), _PER_BATCH):
        chunk = items[start : start + _PER_BATCH]
        session.call(f"params of {name}", lambda client, chunk=chunk: client.log_batch(run_id, params=chunk))


def log_values(session: TrackingSession, run_id: str, name: str, values: dict[str, float], step: int = 0) -> None:
    """Metrics known at once (not a training curve), in one request."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
    if metrics:
        session.call(f"metrics of {name}", lambda client: client.log_batch(run_id, metrics=metrics), count=len(metrics))


def reopen_run(session: TrackingSession, run: Run, parent_id: str | None) -> None:
    """Mark a run RUNNING again (a resumed training, a pipeline continued after a failure).

    Its ``error`` tag becomes ``resumed_after``: the run is no longer failed, but the failure stays on record.
    """
    run_id = run.info.run_id
    session.call("reopened run", lambda client: client.update_run(run_id, status="RUNNING"))
    error = run.data.tags.get("error")
    if error is not None:
        session.call("reopened run", lambda client: client.set_tag(run_id, "resumed_after", error))
        session.call("reopened run", lambda client: client.delete_tag(run_id, "error"))
    if parent_id is not None:
        session.call("reopened run", lambda client: client.set_tag(run_id, PARENT_TAG, parent_id))


def end_run(session: TrackingSession, run_id: str, error: BaseException | None = None) -> None:
    """FINISHED; FAILED with the error as tag ``error``; KILLED on Ctrl-C (the training can resume)."""
    if error is None:
        status = "FINISHED"
    else:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        message = f"{type(error).__name__}: {error}"[:_MAX_TAG]
        session.call("error tag", lambda client: client.set_tag(run_id, "error", message))
    session.call(f"end of run ({status})", lambda client: client.set_terminated(run_id, status=status))
