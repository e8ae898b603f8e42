"""Runs in the MLflow store: create, continue and end them, and remember them in files for later processes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ltsoups.io.atomic import write_json_atomic
from ltsoups.tracking.session import TrackingSession
from ltsoups.tracking.source import source_tags

if TYPE_CHECKING:
    from mlflow.entities import Run

PARENT_TAG = "mlflow.parentRunId"
# MLflow's limit on the characters of a tag value.
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


def create_run(
    session: TrackingSession,
    experiment: str,
    name: str,
    tags: dict[str, str],
    params: dict[str, str],
    start_time: int | None = None,
) -> str | None:
    """A new RUNNING run with MLflow's source tags, ``tags`` and params; None when tracking is off or broken.

    ``start_time`` (ms since the epoch) when the run's work began before the run could be opened; None: now."""
    run_id = session.create_run(experiment, name, {**source_tags(), **tags}, start_time)
    if run_id is not None:
        session.log_params(run_id, params, name)
    return run_id


def reopen_run(session: TrackingSession, run: Run, parent_id: str | None) -> None:
    """Mark a run RUNNING again (a resumed training, a pipeline continued after a failure).

    Its ``error`` tag becomes ``resumed_after``: the run is no longer failed, but the failure stays on record.
    """
    run_id = run.info.run_id
    session.set_running(run_id, "reopened run")
    error = run.data.tags.get("error")
    if error is not None:
        session.set_tag(run_id, "resumed_after", error, "reopened run")
        session.delete_tag(run_id, "error", "reopened run")
    if parent_id is not None:
        session.set_tag(run_id, PARENT_TAG, parent_id, "reopened run")


def end_run(session: TrackingSession, run_id: str, error: BaseException | None = None) -> None:
    """FINISHED; FAILED with the error as tag ``error``; KILLED on Ctrl-C (the training can resume)."""
    if error is None:
        status = "FINISHED"
    else:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        session.set_tag(run_id, "error", f"{type(error).__name__}: {error}"[:_MAX_TAG], "error tag")
    session.terminate(run_id, status, f"end of run ({status})")
