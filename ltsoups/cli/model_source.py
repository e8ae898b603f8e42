"""The classifier a command's ``--model`` names: the run's final model, a checkpoint, or a registered model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ltsoups.cli.common import workspace_of

if TYPE_CHECKING:
    from ltsoups.config import LtSoupsConfig
    from ltsoups.inference.classifier import LoadedClassifier

ModelOrRegistryOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="a checkpoint (.safetensors with its sidecar) or models:/NAME/VERSION of the MLflow registry "
        "(tracking.uri's); default: the run's final model",
    ),
]


def load_model_option(model: str | None, config: LtSoupsConfig) -> LoadedClassifier:
    """``models:/NAME/VERSION`` comes from the configured MLflow store (tracking.uri, else $MLFLOW_TRACKING_URI,
    else ./mlflow.db) into a temporary folder, removed once the classifier is in memory."""
    from ltsoups.inference.classifier import load_classifier
    from ltsoups.inference.sources import resolve_model
    from ltsoups.tracking.registered_checkpoints import RegisteredCheckpoints
    from ltsoups.tracking.settings import tracking_uri

    with tempfile.TemporaryDirectory(prefix="ltsoups-model-") as folder:
        registered = RegisteredCheckpoints(tracking_uri(config.tracking), Path(folder))
        return load_classifier(resolve_model(model, workspace_of(config).final, registered))
