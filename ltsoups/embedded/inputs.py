"""Model inputs for ``ltsoups-mini``: world pixels to normalised tensors, captions to tokens."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# open_clip's OPENAI_DATASET_MEAN / _STD, copied so that importing this module does not import open_clip.
OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)

_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 images (N, 32, 32, 3) as the normalised float batch that open_clip's eval transform gives."""
    batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
    return (batch - _MEAN) / _STD


def tokenize_unique(texts: Sequence[str], model_name: str) -> torch.Tensor:
    """Tokens of ``texts`` (one row each), tokenising every distinct text once."""
    import open_clip

    distinct = sorted(set(texts))
    tokens = open_clip.get_tokenizer(model_name)(distinct)
    row = {text: i for i, text in enumerate(distinct)}
    return tokens[torch.tensor([row[text] for text in texts], dtype=torch.long)]
