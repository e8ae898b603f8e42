"""``models:/NAME/VERSION`` -> the checkpoint of that registered version, downloaded with its sidecar.

`ltsoups predict` and `ltsoups export` read registered models through this: the version's MLmodel file says
which of its files are the weights and the sidecar (the artifacts ``model_logging`` gave it), and only those
two are downloaded, into a folder the caller owns. The weights are then read like any checkpoint: verified
against the sidecar's sha256, never unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import yaml

from ltsoups.checkpoint import sidecar_path
from ltsoups.tracking.served_model import SIDECAR, WEIGHTS
from ltsoups.tracking.settings import quiet_artifact_transfers, shorten_http_retries

MLMODEL = "MLmodel"


class RegisteredModelError(ValueError):
    """A registered model that cannot be read as an ltsoups classifier; the message names it and its store."""


class RegisteredCheckpoints:
    """Downloads registered classifiers from one store into ``folder``."""

    def __init__(self, tracking_uri: str, folder: Path) -> None:
        self.tracking_uri, self.folder = tracking_uri, folder
        # MLflow reads the registry from $MLFLOW_REGISTRY_URI when set, else from the tracking store.
        self.registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri

    def __call__(self, uri: str) -> Path:
        """The downloaded weights of ``uri`` (a ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``), sidecar beside."""
        shorten_http_retries()
        quiet_artifact_transfers()
        flavor = yaml.safe_load(self._download(uri, MLMODEL).read_text()).get("flavors", {}).get("python_function", {})
        artifacts = flavor.get("artifacts") or {}
        if WEIGHTS not in artifacts or SIDECAR not in artifacts:
            raise RegisteredModelError(
                f"{uri} at {self.tracking_uri} is not a classifier logged by ltsoups: its MLmodel names no "
                f"{WEIGHTS!r} and {SIDECAR!r} artifacts"
            )
        weights = self._download(uri, _relative(uri, artifacts[WEIGHTS]["path"]))
        sidecar = self._download(uri, _relative(uri, artifacts[SIDECAR]["path"]))
        if sidecar != sidecar_path(weights):
            raise RegisteredModelError(f"{uri}: its sidecar {sidecar.name} is not the sidecar of {weights.name}")
        return weights

    def _download(self, uri: str, path: str) -> Path:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        try:
            local = download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{path}",
                dst_path=str(self.folder),
                tracking_uri=self.tracking_uri,
                registry_uri=self.registry_uri,
            )
        except MlflowException as err:
            raise RegisteredModelError(f"{uri} at {self.tracking_uri}: {err.message}") from err
        return Path(local)


def _relative(uri: str, path: str) -> str:
    """A file inside the model folder: the MLmodel comes from the store, so a path out of the folder is refused."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise RegisteredModelError(f"{uri}: its MLmodel names an artifact outside the model folder: {path!r}")
    return relative.as_posix()
