"""open_clip's text tower on its own: token ids to normalised embeddings, for the head's init (see backbones.py)."""

from __future__ import annotations

import torch
from torch import nn


class OpenClipTextEncoder(nn.Module):
    """An open_clip model whose image tower was taken out: ``encode_text`` of its token ids.

    With ``back_projection`` (the image tower's removed (width, embed) projection) the embeddings are mapped
    back into the space before it through its transpose and renormalised, as the authors' head init does.
    """

    def __init__(self, clip: nn.Module, back_projection: torch.Tensor | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("back_projection", back_projection)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        embedded = self.clip.encode_text(tokens, normalize=True)
        if self.back_projection is None:
            return embedded
        return nn.functional.normalize(embedded @ self.back_projection.t(), dim=-1)
