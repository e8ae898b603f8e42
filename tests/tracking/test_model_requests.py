"""The served classifier's request and answer format, without a model (the served model: test_model_registry)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ltsoups.tracking.model_requests import (
    RequestError,
    answers,
    decoded_images,
    input_column,
    pixel_batch,
    signature,
    top_k,
)


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_requests_name_the_row_and_what_was_expected() -> None:
    assert input_column(pd.DataFrame({"image": [b""]})) == "image"
    with pytest.raises(RequestError, match="one column, 'image' or 'pixels'"):
        input_column(pd.DataFrame({"image": [b""], "pixels": [[0.0]]}))
    assert [image.size for image in decoded_images([png((1, 2, 3))] * 2)] == [(5, 3), (5, 3)]
    with pytest.raises(RequestError, match="row 65: 'image' is not an image file"):
        decoded_images([png((0, 0, 0)), b"not an image"], first_row=64)
    assert pixel_batch([np.zeros((3, 4, 4)).tolist()] * 2, 4).shape == (2, 3, 4, 4)
    with pytest.raises(RequestError, match=r"row 1: 'pixels' has shape \(3, 2, 2\), the model takes \(3, 4, 4\)"):
        pixel_batch([np.zeros((3, 4, 4)), np.zeros((3, 2, 2))], 4)
    with pytest.raises(RequestError, match="row 0: 'pixels' holds NaN"):
        pixel_batch([np.full((3, 4, 4), np.nan)], 4)
    assert (top_k(None, 3), top_k({"top_k": 2}, 3), top_k({"top_k": 9}, 3)) == (3, 2, 3)
    for bad in (0, True, 1.5, "2"):
        with pytest.raises(RequestError, match="param 'top_k'"):
            top_k({"top_k": bad}, 3)


def test_answers_list_the_most_probable_classes_first() -> None:
    probabilities = np.array([[0.2, 0.5, 0.3], [0.4, 0.2, 0.4]])
    rows = answers(probabilities, ["a", "b", "c"], 2).to_dict("records")
    assert rows[0] == {
        "class": "b",
        "probability": 0.5,
        "top": [{"class": "b", "probability": 0.5}, {"class": "c", "probability": 0.3}],
    }
    assert [entry["class"] for entry in rows[1]["top"]] == ["a", "c"]  # a tie keeps label order, as argmax
    assert list(answers(np.zeros((0, 3)), ["a", "b", "c"], 2).columns) == ["class", "probability", "top"]


def test_signature_takes_either_column_and_top_k() -> None:
    schema = signature()
    assert schema.inputs.input_names() == ["image", "pixels"] and schema.inputs.required_input_names() == []
    assert schema.outputs.input_names() == ["class", "probability", "top"]
    assert [(param.name, param.default) for param in schema.params.params] == [("top_k", 5)]
