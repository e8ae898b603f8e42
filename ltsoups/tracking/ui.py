"""Where MLflow's UI shows an experiment's runs with their accuracy columns, in a browser that has never opened it.

MLflow 3.17's UI opens an experiment on its GenAI overview whatever the experiment's kind tag (the
sidebar's GenAI / Model training switch is kept in the browser's localStorage), and its runs table shows
no metric column until a person picks some. Two things it honours from a link instead: the
``workflowType`` URL parameter, and a saved view stored as the experiment tag
``mlflow.sharedViewState.<key>`` and opened with ``viewStateShareKey=<key>``.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

VIEW_KEY = "ltsoups"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_NAME = "LT-Soups accuracy"
# Test accuracy of the final model (on the pipeline run), then validation accuracy (members and running soups).
ACCURACY_COLUMNS = ("balanced", "many", "medium", "few", "val/balanced", "val/many", "val/medium", "val/few")
_COLUMNS = [f"metrics.`{key}`" for key in ACCURACY_COLUMNS] + ["attributes.`Dataset`", "attributes.`Source`"]
# Sorted by start time, the table nests children under a collapsed parent; any other order lists every run.
# By end time, newest first: each execution's parent, then its evaluation, CR, soups and members.
_VIEW_STATE = {"selectedColumns": _COLUMNS, "columnOrder": _COLUMNS, "orderByKey": "attributes.`end_time`"}
DEFAULT_UI = "http://127.0.0.1:5000"


def runs_view_tag() -> dict[str, str]:
    """The experiment tag holding the runs table's saved view, in the envelope MLflow's Views menu lists."""
    state = {**_VIEW_STATE, "orderByAsc": False}
    envelope = {"name": VIEW_NAME, "createdAt": int(time.time() * 1000), "state": json.dumps(state)}
    return {VIEW_TAG: json.dumps(envelope)}


def runs_table_url(tracking_uri: str, experiment_id: str) -> str:
    """The runs table of the experiment in the model-training view with the saved view: on the tracking server
    itself, or where `mlflow ui` serves a database or folder store by default."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else DEFAULT_UI
    query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": VIEW_KEY})
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"
