"""The cosine head beside an exported encoder: class vectors (safetensors) and what reads them (JSON).

A head that LWS trained also writes its factor per class (``class_scale``) beside the class vectors, and
its ``logits`` formula says so; a head without one writes what it always did.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ltsoups.classifier_spec import ClassifierSpec, PreprocessSpec
from ltsoups.inference.classifier import HEAD_WEIGHT, LoadedClassifier
from ltsoups.io.atomic import write_json_atomic
from ltsoups.io.safetensors import write_safetensors
from ltsoups.model import CLASS_SCALE
from ltsoups.schema import StrictModel

HEAD_WEIGHTS = "head.safetensors"
HEAD_RECORD = "head.json"
CLASS_VECTORS = "class_vectors"
HEAD_CLASS_SCALE = f"head.{CLASS_SCALE}"
COSINE_LOGITS = "scale * normalize(features) @ normalize(class_vectors).T"
SCALED_LOGITS = f"{CLASS_SCALE} * {COSINE_LOGITS}"


class HeadRecord(StrictModel):
    """``head.json``: how logits come from the encoder's features, the class names and the preprocessing."""

    logits: str = COSINE_LOGITS
    scale: float
    class_names: tuple[str, ...]
    preprocess: PreprocessSpec
    source: str
    """the checkpoint exported"""
    source_weights_sha256: str

    @classmethod
    def of(cls, loaded: LoadedClassifier) -> HeadRecord:
        spec: ClassifierSpec = loaded.spec
        return cls(
            logits=COSINE_LOGITS if class_scale(loaded) is None else SCALED_LOGITS,
            scale=spec.head_scale,
            class_names=spec.class_names,
            preprocess=spec.preprocess,
            source=str(loaded.checkpoint.path),
            source_weights_sha256=loaded.checkpoint.sidecar.weights_sha256,
        )


def write_head(loaded: LoadedClassifier, folder: Path, with_vectors: bool) -> list[Path]:
    """``head.json``, and with ``with_vectors`` the class vectors as ``head.safetensors``; the paths written."""
    written = [folder / HEAD_RECORD]
    write_json_atomic(written[0], HeadRecord.of(loaded).model_dump(mode="json"))
    if with_vectors:
        written.append(folder / HEAD_WEIGHTS)
        tensors = {CLASS_VECTORS: loaded.model.state_dict()[HEAD_WEIGHT]}
        factors = class_scale(loaded)
        if factors is not None:
            tensors[CLASS_SCALE] = factors
        write_safetensors(written[1], {name: tensor.float().contiguous() for name, tensor in tensors.items()})
    return written


def class_scale(loaded: LoadedClassifier) -> torch.Tensor | None:
    """The head's factor per class where LWS trained one, else None."""
    return loaded.model.state_dict().get(HEAD_CLASS_SCALE)


def head_logits(folder: Path, features: torch.Tensor) -> torch.Tensor:
    """The logits the exported head files give for ``features``, read back from disk."""
    record = HeadRecord.model_validate_json((folder / HEAD_RECORD).read_text())
    tensors = load_file(str(folder / HEAD_WEIGHTS))
    logits = record.scale * F.normalize(features.float(), dim=-1) @ F.normalize(tensors[CLASS_VECTORS], dim=-1).t()
    return logits * tensors[CLASS_SCALE] if CLASS_SCALE in tensors else logits
