"""open_clip: the fine-tuned image tower inside the pretrained CLIP's whole state dict, text tower included."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from ltsoups.export.choices import ExportFormat
from ltsoups.export.formats import Exporter, ExportError, head_lines, plain_encoder_state
from ltsoups.export.head import class_scale, head_logits, write_head
from ltsoups.io.safetensors import write_safetensors

WEIGHTS = "open_clip_model.safetensors"
VISUAL = "visual."


@runtime_checkable
class OpenClipTower(Protocol):
    """A backbone whose encoder is an open_clip image tower (the built-in open-clip backbone is one)."""

    @property
    def open_clip_model(self) -> str: ...

    @property
    def open_clip_config(self) -> Path | None:
        """The model's config file when open_clip does not ship it."""

    @property
    def before_projection(self) -> bool: ...

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        """The whole pretrained CLIP's state dict, both towers."""


class OpenClipExporter(Exporter):
    format = ExportFormat.OPEN_CLIP
    backbone_kind = OpenClipTower
    backbone: OpenClipTower

    def write(self, folder: Path) -> list[Path]:
        clip = self.backbone.pretrained_state()
        for name, tensor in plain_encoder_state(self.loaded).items():
            target = VISUAL + name
            if target not in clip:
                raise ExportError(
                    f"the image encoder's {name!r} has no place in open_clip model {self.backbone.open_clip_model!r} "
                    "(PEFT adapters that cannot be folded, e.g. adaptformer): export it as onnx"
                )
            if clip[target].shape != tensor.shape:
                raise ExportError(
                    f"{name}: shape {tuple(tensor.shape)}, the pretrained CLIP's is {tuple(clip[target].shape)}"
                )
            clip[target] = tensor  # in its own precision: the pretrained file may be fp16 (the embedded one is)
        written = [folder / WEIGHTS]
        write_safetensors(written[0], {name: tensor.contiguous() for name, tensor in clip.items()})
        config = self.backbone.open_clip_config
        if config is not None:  # not one of open_clip's own models: its config goes beside the weights
            written.append(folder / config.name)
            shutil.copyfile(config, written[-1])
        return written + write_head(self.loaded, folder, with_vectors=True)

    def logits(self, folder: Path, images: torch.Tensor) -> torch.Tensor:
        import open_clip

        config = self.backbone.open_clip_config
        if config is not None:
            open_clip.add_model_config(folder / config.name)
        model, _, _ = open_clip.create_model_and_transforms(
            self.backbone.open_clip_model, pretrained=str(folder / WEIGHTS)
        )
        model.eval()
        if self.backbone.before_projection:
            model.visual.proj = None
        with torch.no_grad():
            return head_logits(folder, model.encode_image(images))

    def usage(self, folder: Path) -> str:
        model, config = self.backbone.open_clip_model, self.backbone.open_clip_config
        lines = [
            "import json",
            "from pathlib import Path",
            "",
            "import open_clip",
            "import torch",
            "import torch.nn.functional as F",
            "from PIL import Image",
            "from safetensors.torch import load_file",
            "",
        ]
        if config is not None:
            lines.append(f'open_clip.add_model_config("{folder}/{config.name}")')
        lines.append(
            f'model, _, preprocess = open_clip.create_model_and_transforms("{model}", pretrained="{folder}/{WEIGHTS}")'
        )
        lines.append("model.eval()")
        if self.backbone.before_projection:
            lines.append("model.visual.proj = None  # the head reads features before CLIP's projection")
        lines += [
            "with torch.no_grad():",
            '    features = model.encode_image(preprocess(Image.open("IMAGE.png").convert("RGB"))[None])',
            *head_lines(folder, class_scale(self.loaded) is not None),
        ]
        return "\n".join(lines)
