"""What every export format provides: which backbones it takes, how it writes, how it reads itself back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import torch

from ltsoups.contracts import Backbone
from ltsoups.export.choices import ExportFormat
from ltsoups.inference.classifier import LoadedClassifier
from ltsoups.peft.adapters import fold_lora, is_lora_state


class ExportError(ValueError):
    """An export that cannot be made, or that did not reproduce ltsoups' logits when read back."""


class Exporter(ABC):
    """One format: ``write`` the files into a folder, then ``logits`` reads them back with the target library."""

    format: ClassVar[ExportFormat]
    backbone_kind: ClassVar[type | None] = None
    """the protocol (runtime-checkable) a backbone plugin must provide to be exported so; None: any backbone"""

    def __init__(self, loaded: LoadedClassifier, backbone: Backbone) -> None:
        self.loaded, self.backbone = loaded, backbone

    @abstractmethod
    def write(self, folder: Path) -> list[Path]:
        """Write the export's files into ``folder``; the paths written."""

    @abstractmethod
    def logits(self, folder: Path, images: torch.Tensor) -> torch.Tensor:
        """The target library's logits, from the files in ``folder``, for (N, C, H, W) preprocessed images."""

    @abstractmethod
    def usage(self, folder: Path) -> str:
        """The few lines of Python that classify an image with the files once they are in ``folder``."""


def plain_encoder_state(loaded: LoadedClassifier) -> dict[str, torch.Tensor]:
    """The image encoder's weights under the backbone library's own names (LoRA folded into its weights)."""
    state = loaded.model.encoder.state_dict()
    return fold_lora(state) if is_lora_state(state) else dict(state)


def head_lines(folder: Path, class_scaled: bool) -> list[str]:
    """Python lines that turn ``features`` into the class name the exported head predicts.

    ``class_scaled``: the head holds a factor per class (LWS), which multiplies each class's logit.
    """
    lines = [
        f'head = json.loads(Path("{folder}/head.json").read_text())',
        f'vectors = load_file("{folder}/head.safetensors")["class_vectors"]',
        "logits = head['scale'] * F.normalize(features, dim=-1) @ F.normalize(vectors, dim=-1).T",
    ]
    if class_scaled:
        lines.append(f'logits = logits * load_file("{folder}/head.safetensors")["class_scale"]')
    return [*lines, "print(head['class_names'][logits.argmax().item()])"]
