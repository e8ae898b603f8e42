"""timm: the fine-tuned backbone as a checkpoint timm loads strictly with ``num_classes=0``, plus the head."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ltsoups.export.choices import ExportFormat
from ltsoups.export.formats import Exporter, head_lines, plain_encoder_state
from ltsoups.export.head import class_scale, head_logits, write_head
from ltsoups.io.safetensors import write_safetensors

WEIGHTS = "model.safetensors"


@runtime_checkable
class TimmModel(Protocol):
    """A backbone whose encoder is a timm model without its classifier (the built-in timm backbone is one)."""

    @property
    def timm_model(self) -> str: ...

    @property
    def timm_arguments(self) -> dict[str, Any]:
        """What `timm.create_model` takes besides the name (e.g. img_size)."""


class TimmExporter(Exporter):
    format = ExportFormat.TIMM
    backbone_kind = TimmModel
    backbone: TimmModel

    def write(self, folder: Path) -> list[Path]:
        path = folder / WEIGHTS
        write_safetensors(path, {name: t.contiguous() for name, t in plain_encoder_state(self.loaded).items()})
        return [path, *write_head(self.loaded, folder, with_vectors=True)]

    def _arguments(self, folder: Path) -> str:
        extra = "".join(f", {name}={value!r}" for name, value in self.backbone.timm_arguments.items())
        return f'"{self.backbone.timm_model}", num_classes=0, checkpoint_path="{folder}/{WEIGHTS}"{extra}'

    def logits(self, folder: Path, images: torch.Tensor) -> torch.Tensor:
        import timm

        model = timm.create_model(
            self.backbone.timm_model,
            num_classes=0,
            checkpoint_path=str(folder / WEIGHTS),
            **self.backbone.timm_arguments,
        )
        model.eval()
        with torch.no_grad():
            return head_logits(folder, model(images))

    def usage(self, folder: Path) -> str:
        return "\n".join(
            [
                "import json",
                "from pathlib import Path",
                "",
                "import timm",
                "import torch",
                "import torch.nn.functional as F",
                "from PIL import Image",
                "from safetensors.torch import load_file",
                "",
                f"model = timm.create_model({self._arguments(folder)}).eval()",
                "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
                "with torch.no_grad():",
                '    features = model(transform(Image.open("IMAGE.png").convert("RGB"))[None])',
                *head_lines(folder, class_scale(self.loaded) is not None),
            ]
        )
