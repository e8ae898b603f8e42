"""open_clip's text tower on its own: token ids to normalised embeddings, for the head's init (see backbones.py)."""

from __future__ import annotations

import torch
from torch import nn


class OpenClipTextEncoder(nn.Module):
    """An open_clip model whose image tower was taken out: ``encode_text`` of its token ids."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens, normalize=True)
