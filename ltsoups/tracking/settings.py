"""Where MLflow runs go, and HTTP retries short enough that a dead server cannot stall training."""

from __future__ import annotations

import os
from pathlib import Path

from ltsoups.config import TrackingConfig

DEFAULT_DATABASE = "mlflow.db"

# MLflow retries a failed request 7 times with exponential backoff, minutes in all: a tracking server
# that is down must cost a training run seconds. Values the user has set win.
_SHORT_HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# MLflow draws a progress bar for every file of a model it copies or downloads: noise in a stage's log.
_QUIET_TRANSFERS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def tracking_uri(config: TrackingConfig) -> str:
    """``tracking.uri``, else $MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db`` in the working directory."""
    # An absolute path: MLflow caches stores by URI, and a relative one would follow a later chdir.
    return config.uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DATABASE).resolve()}"


def shorten_http_retries() -> None:
    for name, value in _SHORT_HTTP_RETRIES.items():
        os.environ.setdefault(name, value)


def quiet_artifact_transfers() -> None:
    for name, value in _QUIET_TRANSFERS.items():
        os.environ.setdefault(name, value)
