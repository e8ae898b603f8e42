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
from ltsoups.inference.sources import REGISTRY_PREFIX
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
        """The downloaded weights of ``uri`` (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``), sidecar beside."""
        shorten_http_retries()
        quiet_artifact_transfers()
        root = self._model_folder(uri)
        flavor = yaml.safe_load(self._download(uri, root, MLMODEL).read_text()).get("flavors", {})
        artifacts = flavor.get("python_function", {}).get("artifacts") or {}
        if WEIGHTS not in artifacts or SIDECAR not in artifacts:
            raise RegisteredModelError(
                f"{uri} at {self.tracking_uri} is not a classifier logged by ltsoups: its MLmodel names no "
                f"{WEIGHTS!r} and {SIDECAR!r} artifacts"
            )
        weights = self._download(uri, root, _relative(uri, artifacts[WEIGHTS]["path"]))
        sidecar = self._download(uri, root, _relative(uri, artifacts[SIDECAR]["path"]))
        if sidecar != sidecar_path(weights):
            raise RegisteredModelError(f"{uri}: its sidecar {sidecar.name} is not the sidecar of {weights.name}")
        return weights

    def _model_folder(self, uri: str) -> str:
        """Where the version's files are. Resolved with a client of this store: MLflow's own ``models:/``
        download asks the global registry URI instead."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        name, version, alias = _parse(uri)
        client = MlflowClient(self.tracking_uri, self.registry_uri)
        try:
            if alias is not None:
                version = client.get_model_version_by_alias(name, alias).version
            return client.get_model_version_download_uri(name, version)
        except MlflowException as err:
            raise RegisteredModelError(f"{uri} at {self.tracking_uri}: {err.message}") from err

    def _download(self, uri: str, root: str, path: str) -> Path:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        try:
            local = download_artifacts(
                artifact_uri=f"{root.rstrip('/')}/{path}", dst_path=str(self.folder), tracking_uri=self.tracking_uri
            )
        except MlflowException as err:
            raise RegisteredModelError(f"{uri} at {self.tracking_uri}: {err.message}") from err
        return Path(local)


def _parse(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""
    reference = uri.removeprefix(REGISTRY_PREFIX).rstrip("/")
    if "@" in reference:
        name, _, alias = reference.rpartition("@")
        if name and alias and "/" not in name:
            return name, None, alias
    else:
        name, _, version = reference.rpartition("/")
        if name and version.isdigit() and "/" not in name:
            return name, version, None
    raise RegisteredModelError(f"{uri}: a registered model is models:/NAME/VERSION or models:/NAME@ALIAS")


def _relative(uri: str, path: str) -> str:
    """A file inside the model folder: the MLmodel comes from the store, so a path out of the folder is refused."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise RegisteredModelError(f"{uri}: its MLmodel names an artifact outside the model folder: {path!r}")
    return relative.as_posix()
