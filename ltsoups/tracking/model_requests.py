"""What the logged classifier takes and answers, over HTTP and in `mlflow.pyfunc`: its MLflow signature.

A request is a table with one of two columns, the same for every row:

- ``image``: an encoded image file (PNG, JPEG, ... whatever Pillow reads); over HTTP base64, as MLflow sends
  binary columns. It is resized, cropped and normalised as the run evaluated (test-time views included).
- ``pixels``: one image already preprocessed, a (3, S, S) array of normalised floats, S the model's input size.

The answer has a row per input: the top-1 ``class`` and its ``probability``, and ``top``, the ``top_k`` most
probable classes (parameter, default 5) with their probabilities, most probable first, as `ltsoups predict`
writes them in JSON lines. Probabilities are the softmax of the logits, averaged over the evaluation's views.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Object, ParamSchema, ParamSpec, Property, Schema
from PIL import Image, UnidentifiedImageError

IMAGE, PIXELS = "image", "pixels"
TOP_K, DEFAULT_TOP_K = "top_k", 5
CLASS, PROBABILITY, TOP = "class", "probability", "top"


class RequestError(ValueError):
    """A request the model cannot answer; the message names the row and what was expected."""


def signature() -> ModelSignature:
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec(DataType.binary, IMAGE, required=False),
                ColSpec(Array(Array(Array(DataType.double))), PIXELS, required=False),
            ]
        ),
        outputs=Schema(
            [
                ColSpec(DataType.string, CLASS),
                ColSpec(DataType.double, PROBABILITY),
                ColSpec(Array(Object([Property(CLASS, DataType.string), Property(PROBABILITY, DataType.double)])), TOP),
            ]
        ),
        params=ParamSchema([ParamSpec(TOP_K, DataType.long, DEFAULT_TOP_K)]),
    )


def input_column(request: pd.DataFrame) -> str:
    """Which of the two input columns the request uses."""
    present = [name for name in (IMAGE, PIXELS) if name in request.columns]
    if len(present) != 1:
        raise RequestError(f"a request has one column, {IMAGE!r} or {PIXELS!r}; got {list(request.columns)}")
    return present[0]


def decoded_images(column: Sequence[bytes], first_row: int = 0) -> list[Image.Image]:
    """Each encoded file as an RGB image; the first that is not an image is an error naming its row."""
    images = []
    for row, data in enumerate(column, start=first_row):
        try:
            with Image.open(io.BytesIO(data)) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, TypeError, ValueError) as err:
            raise RequestError(f"row {row}: {IMAGE!r} is not an image file Pillow can read ({err})") from err
    return images


def pixel_batch(column: Sequence[object], image_size: int) -> np.ndarray:
    """The preprocessed images as one float32 (N, 3, S, S) array; a row of another shape is an error naming it."""
    expected = (3, image_size, image_size)
    arrays = []
    for row, value in enumerate(column):
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise RequestError(f"row {row}: {PIXELS!r} is not an array of numbers ({err})") from err
        if array.shape != expected:
            raise RequestError(f"row {row}: {PIXELS!r} has shape {array.shape}, the model takes {expected}")
        if not np.isfinite(array).all():
            raise RequestError(f"row {row}: {PIXELS!r} holds NaN or infinite values")
        arrays.append(array)
    return np.stack(arrays) if arrays else np.zeros((0, *expected), dtype=np.float32)


def top_k(params: dict[str, object] | None, num_classes: int) -> int:
    value = (params or {}).get(TOP_K, DEFAULT_TOP_K)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise RequestError(f"param {TOP_K!r} is {value!r}; it must be an integer of at least 1")
    return min(int(value), num_classes)


def answers(probabilities: np.ndarray, class_names: Sequence[str], k: int) -> pd.DataFrame:
    """A row per image: top-1 class and probability, and the k most probable classes, most probable first."""
    # A stable sort on the negated values: ties keep label order, as argmax does.
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(probabilities, order, axis=1)
    return pd.DataFrame(
        {
            CLASS: [class_names[row[0]] for row in order],
            PROBABILITY: top[:, 0].astype(float),
            TOP: [
                [{CLASS: class_names[c], PROBABILITY: float(p)} for c, p in zip(classes, values, strict=True)]
                for classes, values in zip(order, top, strict=True)
            ],
        }
    )
