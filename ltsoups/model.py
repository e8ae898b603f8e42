"""The classifier LT-Soups fine-tunes: a pretrained image encoder and a cosine head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ltsoups.contracts import TextTower
from ltsoups.runtime import Runtime

PROMPT_BATCH_SIZE = 256


CLASS_SCALE = "class_scale"


class CosineHead(nn.Module):
    """logits = scale * cos(feature, class vector); no bias.

    After LWS (``learn_class_scale``) the head also holds a factor per class, ``class_scale``:
    logits_c = class_scale_c * scale * cos(feature, w_c). The factor is in the state dict only then, and
    loading a state dict adds or drops it as the state holds it or not, so that one head takes any
    classifier checkpoint and a head without it has the state dict it always had.
    """

    class_scale: nn.Parameter | None

    def __init__(self, weight: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.scale = scale
        self.register_parameter(CLASS_SCALE, None)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.scale * F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).t()
        return logits if self.class_scale is None else logits * self.class_scale

    def learn_class_scale(self) -> None:
        """LWS (Kang et al.): a factor per class, 1 to start with, trains; the class vectors stay as they are."""
        self.weight.requires_grad_(False)
        self._use_class_scale(True)

    def _use_class_scale(self, used: bool) -> None:
        ones = torch.ones(len(self.weight), device=self.weight.device)
        self.register_parameter(CLASS_SCALE, nn.Parameter(ones) if used else None)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        held = prefix + CLASS_SCALE in state_dict
        if held != (self.class_scale is not None):
            self._use_class_scale(held)
        super()._load_from_state_dict(state_dict, prefix, *args)


class LongTailClassifier(nn.Module):
    """Image encoder followed by a cosine head; its state dict is what members, soups and CR save."""

    def __init__(self, encoder: nn.Module, head: CosineHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images))


def prompt_embeddings(
    text: TextTower, class_names: Sequence[str], templates: Sequence[str], runtime: Runtime
) -> torch.Tensor:
    """Per class: the mean of its normalised prompt embeddings over templates, normalised again.

    The text tower runs on the run's device, ``PROMPT_BATCH_SIZE`` prompts at a time. Underscores in class
    names ("aquarium_fish") become spaces, as in the authors' head init.
    """
    encoder = runtime.place(text.encoder).eval()
    readable = [name.replace("_", " ") for name in class_names]
    per_template = []
    with runtime.inference():
        for template in templates:
            prompts = [template.format(name) for name in readable]
            chunks = [
                encoder(runtime.place(text.tokenize(prompts[start : start + PROMPT_BATCH_SIZE]))).float()
                for start in range(0, len(prompts), PROMPT_BATCH_SIZE)
            ]
            per_template.append(F.normalize(torch.cat(chunks), dim=-1))
    return F.normalize(torch.stack(per_template).mean(dim=0), dim=-1)
