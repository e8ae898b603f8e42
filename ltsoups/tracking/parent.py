"""The pipeline's parent run: created by the first stage of an execution, found again by the others.

Stages run as separate processes (one DVC stage each), so the parent run is written down in
``outputs/tracking/parent_run.json``. A stage continues that run while it is unfinished and was
started for the same config; `evaluate`, the last stage, finishes it, so the next execution starts
a new one. A failed execution's parent is continued by the run that picks up after the failure.
"""

from __future__ import annotations

import os
import time

from ltsoups.config import LtSoupsConfig
from ltsoups.provenance import code_version, hash_json
from ltsoups.tracking.params import flat_params
from ltsoups.tracking.runs import RunRecord, create_run, reopen_run
from ltsoups.tracking.session import TrackingSession
from ltsoups.workspace import Workspace


def pipeline_config(config: LtSoupsConfig) -> dict:
    """Everything that shapes the results: all but the tracking section, how runs are compared, and the runner,
    which only decides where members train (so `train-members --runner ray` and the DVC stages after it share
    one parent)."""
    excluded = ("tracking", "compare", "runner")
    return {key: value for key, value in config.model_dump(mode="json").items() if key not in excluded}


def common_tags(config: LtSoupsConfig) -> dict[str, str]:
    return {"code_version": code_version(), "config_hash": hash_json(pipeline_config(config))}


def open_parent(session: TrackingSession, config: LtSoupsConfig, workspace: Workspace) -> tuple[str | None, str | None]:
    """(experiment id, parent run id): the recorded run if unfinished and of this config, else a new run."""
    tags = common_tags(config)
    name = config.tracking.experiment
    record = RunRecord.load(workspace.tracking_run)
    if record is not None and (record.tracking_uri, record.experiment_name) == (session.uri, name):
        run = session.find_run(record.run_id)
        if run is not None and run.info.lifecycle_stage == "active" and run.info.status != "FINISHED":
            if record.config_sha256 == tags["config_hash"]:
                if run.info.status != "RUNNING":
                    reopen_run(session, run, None)
                return record.experiment_id, record.run_id
            _supersede(session, record.run_id)
    experiment = session.experiment(name)
    if experiment is None:
        return None, None
    exp_name = os.environ.get("DVC_EXP_NAME")
    if exp_name:
        tags["dvc_exp_name"] = exp_name
    run_name = f"pipeline {exp_name or time.strftime('%Y-%m-%d %H:%M:%S')}"
    run_id = create_run(
        session, experiment, run_name, {**tags, "kind": "pipeline"}, flat_params(pipeline_config(config))
    )
    if run_id is None:
        return experiment, None
    RunRecord(run_id, experiment, name, session.uri, tags["config_hash"]).save(workspace.tracking_run)
    session.log_dict(run_id, pipeline_config(config), "config.yaml", "resolved config")
    return experiment, run_id


def _supersede(session: TrackingSession, run_id: str) -> None:
    """An unfinished execution whose config has since changed will never be continued: close it."""
    session.set_tag(run_id, "superseded", "config changed", "superseded run")
    session.terminate(run_id, "KILLED", "superseded run")
