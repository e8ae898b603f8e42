"""ONNX: preprocessed images (N, 3, H, W) in, logits out (encoder and cosine head), the batch size dynamic."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ltsoups.export.choices import ExportFormat
from ltsoups.export.formats import Exporter, ExportError
from ltsoups.export.head import write_head

MODEL = "model.onnx"
INPUT, OUTPUT = "images", "logits"
if TYPE_CHECKING:
    import onnxruntime

TRACE_BATCH = 2  # a batch of 1 lets the exporter specialise the batch dimension away


class OnnxExporter(Exporter):
    format = ExportFormat.ONNX

    def write(self, folder: Path) -> list[Path]:
        _require_onnx()
        size = self.loaded.spec.preprocess.image_size
        example = torch.zeros(TRACE_BATCH, 3, size, size)
        path = folder / MODEL
        # The exporter reports its progress on stdout; the export's own report is what users read.
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            torch.onnx.export(
                self.loaded.model,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
            )
        return [path, *write_head(self.loaded, folder, with_vectors=False)]

    def logits(self, folder: Path, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session(folder / MODEL).run([OUTPUT], {INPUT: images.numpy()})[0])

    def usage(self, folder: Path) -> str:
        spec = self.loaded.spec.preprocess
        return "\n".join(
            [
                "import json",
                "from pathlib import Path",
                "",
                "import numpy as np",
                "import onnxruntime",
                "from PIL import Image",
                "",
                f'head = json.loads(Path("{folder}/head.json").read_text())',
                f'session = onnxruntime.InferenceSession("{folder}/{MODEL}", providers=["CPUExecutionProvider"])',
                f'image = Image.open("IMAGE.png").convert("RGB").resize(({spec.image_size}, {spec.image_size}), '
                "Image.BICUBIC)",
                f"pixels = (np.asarray(image, np.float32) / 255 - {list(spec.mean)}) / {list(spec.std)}",
                "batch = pixels.transpose(2, 0, 1)[None].astype(np.float32)",
                f'logits = session.run(["{OUTPUT}"], {{"{INPUT}": batch}})[0]',
                "print(head['class_names'][int(logits.argmax())])",
            ]
        )


def session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU for the model at ``path``."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _require_onnx() -> None:
    """torch's exporter and the check need onnx, onnxscript and onnxruntime: the ``onnx`` extra."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"onnx export needs {', '.join(missing)}: pip install 'ltsoups[onnx]'")
