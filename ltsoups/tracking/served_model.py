"""The classifier as an MLflow pyfunc: rebuilt from its safetensors weights and JSON sidecar, never unpickled.

``model_code.py`` hands an instance to MLflow (models-from-code), so the logged model folder holds that file,
the weights and the sidecar, and no pickled object.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel, PythonModelContext

from ltsoups.checkpoint import sidecar_path
from ltsoups.runtime import Runtime, RuntimeSettings
from ltsoups.tracking.model_requests import IMAGE, RequestError, answers, decoded_images, input_column, pixel_batch
from ltsoups.tracking.model_requests import top_k as chosen_top_k

if TYPE_CHECKING:
    from ltsoups.inference.classifier import LoadedClassifier

WEIGHTS = "weights"
"""The model's artifact holding the checkpoint; its sidecar is the artifact ``sidecar``, beside it."""
SIDECAR = "sidecar"
BATCH_SIZE = 64


class ServedClassifier(PythonModel):
    """Answers requests of the form ``ltsoups.tracking.model_requests`` describes, on CUDA when there is one."""

    def load_context(self, context: PythonModelContext) -> None:
        from ltsoups.inference.classifier import load_classifier

        weights, sidecar = Path(context.artifacts[WEIGHTS]), Path(context.artifacts[SIDECAR])
        if sidecar != sidecar_path(weights):
            raise MlflowException(f"the model's sidecar {sidecar} is not beside its weights {weights}")
        self.runtime = Runtime.of(RuntimeSettings(device="auto"))
        self.classifier: LoadedClassifier = load_classifier(weights)
        self.runtime.place(self.classifier.model)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        try:
            k = chosen_top_k(params, len(self.classifier.class_names))
            column = input_column(model_input)
            if column == IMAGE:
                probabilities = self._images(list(model_input[IMAGE]))
            else:
                image_size = self.classifier.spec.preprocess.image_size
                probabilities = self._pixels(pixel_batch(list(model_input[column]), image_size))
        except RequestError as err:
            raise MlflowException.invalid_parameter_value(str(err)) from err
        return answers(probabilities, self.classifier.class_names, k)

    def _images(self, files: list[bytes]) -> np.ndarray:
        """Every view the run evaluated each image on; the logits averaged over views, as the evaluate stage does."""
        import torch

        from ltsoups.evaluation import mean_over_views

        chunks = []
        for start in range(0, len(files), BATCH_SIZE):
            images = decoded_images(files[start : start + BATCH_SIZE], first_row=start)
            views = torch.stack([self.classifier.views(image) for image in images])
            with self.runtime.inference():
                chunks.append(mean_over_views(self.classifier.model, views, self.runtime))
        return _probabilities(chunks, len(self.classifier.class_names))

    def _pixels(self, batch: np.ndarray) -> np.ndarray:
        import torch

        model, chunks = self.classifier.model, []
        for start in range(0, len(batch), BATCH_SIZE):
            inputs = self.runtime.place(torch.from_numpy(batch[start : start + BATCH_SIZE]))
            with self.runtime.inference():
                chunks.append(model(inputs).float().cpu())
        return _probabilities(chunks, len(self.classifier.class_names))


def _probabilities(logits: list[Any], num_classes: int) -> np.ndarray:
    import torch

    if not logits:
        return np.zeros((0, num_classes), dtype=np.float32)
    return torch.cat(logits).softmax(dim=1).numpy()
