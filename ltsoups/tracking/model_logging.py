"""The final classifier as an MLflow Model on the pipeline's parent run; with ``tracking.register``, a new
version of a registered model, tagged with what produced it.

The model is MLflow's models-from-code: ``model_code.py`` and the checkpoint's safetensors weights and JSON
sidecar, with a signature (``model_requests``), an input example and pinned pip requirements. Nothing in the
model folder is pickled.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from ltsoups.checkpoint import Checkpoint, sidecar_path
from ltsoups.plan import Plan
from ltsoups.tracking.session import TrackingSession
from ltsoups.tracking.settings import quiet_artifact_transfers
from ltsoups.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger("ltsoups.tracking")

MODEL_NAME = "classifier"
MODEL_CODE = Path(__file__).with_name("model_code.py")
# What the served model imports: ltsoups and the libraries its backbones, preprocessing and MLflow need.
REQUIRED_DISTRIBUTIONS = (
    "ltsoups",
    "mlflow",
    "torch",
    "torchvision",
    "open_clip_torch",
    "timm",
    "safetensors",
    "numpy",
    "pillow",
    "pandas",
    "pydantic",
)
_SEPARATOR = ","


@dataclass(frozen=True)
class ModelOrigin:
    """What produced a logged classifier: the tags of its MLflow Model and of its registered versions."""

    config_hash: str
    code_version: str
    weights_sha256: str
    members: tuple[str, ...]
    """the members the soup was merged from"""
    member_runs: tuple[str, ...]
    """the MLflow runs that trained them, where this workdir recorded them in this store"""

    def tags(self) -> dict[str, str]:
        return {
            "config_hash": self.config_hash,
            "code_version": self.code_version,
            "weights_sha256": self.weights_sha256,
            "members": _SEPARATOR.join(self.members),
            "member_runs": _SEPARATOR.join(self.member_runs),
        }


def merged_members(soup: Checkpoint, plan: Plan, workspace: Workspace) -> tuple[str, ...]:
    """The planned members whose weights the soup's sidecar lists among its inputs, in plan order."""
    inputs = {Path(entry.path).resolve() for entry in soup.sidecar.inputs or []}
    return tuple(planned.member for planned in plan.members if workspace.member(planned.member).resolve() in inputs)


def pip_requirements() -> list[str]:
    """Each distribution the served model imports, pinned to the version installed here."""
    pinned = []
    for name in REQUIRED_DISTRIBUTIONS:
        try:
            # A local build tag (torch's "+cpu") is not on the package index: pin the release.
            pinned.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pinned


def example_request(image_size: int) -> pd.DataFrame:
    """One grey PNG of the model's input size: the request format, with no image of the dataset in the model."""
    import pandas as pd
    from PIL import Image

    from ltsoups.tracking.model_requests import IMAGE

    buffer = io.BytesIO()
    Image.new("RGB", (image_size, image_size), (128, 128, 128)).save(buffer, format="PNG")
    return pd.DataFrame({IMAGE: [buffer.getvalue()]})


def log_classifier(
    session: TrackingSession,
    experiment_id: str,
    run_id: str,
    checkpoint: Checkpoint,
    origin: ModelOrigin,
    params: dict[str, str],
    metrics: dict[str, float],
) -> str | None:
    """Log the checkpoint as the run's MLflow Model, with the run's ``params`` and the ``metrics`` it scored;
    its model id (None when tracking is off or failed).

    The model is saved here, loaded back and asked its input example before anything is uploaded.
    """

    def log_model(client: MlflowClient) -> str:
        from mlflow.entities import LoggedModelOutput, Metric

        # Through this client, not mlflow.pyfunc.log_model: that one logs to the global tracking URI and puts
        # the model in the active experiment, and ltsoups' stores are clients of their own.
        model = client.create_logged_model(
            experiment_id, MODEL_NAME, source_run_id=run_id, tags=origin.tags(), params=params
        )
        try:
            with tempfile.TemporaryDirectory(prefix="ltsoups-mlflow-model-") as folder:
                save_classifier(Path(folder) / "model", checkpoint, run_id, model.model_id, model.artifact_location)
                client.log_model_artifacts(model.model_id, str(Path(folder) / "model"))
        except BaseException:
            client.finalize_logged_model(model.model_id, "FAILED")
            raise
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        now = int(time.time() * 1000)
        linked = [Metric(key, value, now, 0, run_id=run_id, model_id=model.model_id) for key, value in metrics.items()]
        client.log_batch(run_id, metrics=linked)
        client.finalize_logged_model(model.model_id, "READY")
        return model.model_id

    return session.call("MLflow model of the final classifier", log_model)


def save_classifier(
    path: Path, checkpoint: Checkpoint, run_id: str | None = None, model_id: str | None = None, location: str = ""
) -> None:
    """The checkpoint as an MLflow Model folder at ``path``, checked: loaded back, it answers its input example."""
    import mlflow
    from mlflow.models import Model

    from ltsoups.inference.classifier import classifier_spec
    from ltsoups.tracking.model_requests import signature
    from ltsoups.tracking.served_model import SIDECAR, WEIGHTS

    example = example_request(classifier_spec(checkpoint).preprocess.image_size)
    quiet_artifact_transfers()
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(MODEL_CODE),
        artifacts={WEIGHTS: str(checkpoint.path), SIDECAR: str(sidecar_path(checkpoint.path))},
        signature=signature(),
        input_example=example,
        pip_requirements=pip_requirements(),
        mlflow_model=Model(artifact_path=location, run_id=run_id, model_id=model_id, model_uuid=model_id),
    )
    mlflow.pyfunc.load_model(str(path)).predict(example)


def register_version(
    session: TrackingSession, name: str, model_id: str, run_id: str, origin: ModelOrigin
) -> str | None:
    """A new version of registered model ``name`` (created on first use); its version number."""

    def register(client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(name, description="LT-Soups classifiers (ltsoups)")
        except MlflowException as err:
            if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        created = client.create_model_version(
            name, f"models:/{model_id}", run_id=run_id, tags=origin.tags(), model_id=model_id
        )
        return str(created.version)

    registered = session.call(f"registered model {name!r}", register)
    if registered is not None:
        session.set_tag(run_id, "registered_model", f"models:/{name}/{registered}", "registered model tag")
        log.info("registered models:/%s/%s", name, registered)
    return registered
