"""The open-clip backbone's feature space: after CLIP's projection (default) or before it (the authors', LIFT's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_config import validate_config

from ltsoups.contracts import TextTower
from ltsoups.plugins.backbones import FeatureSpace, OpenClipBackbone, OpenClipParams

WIDTH, EMBED = 96, 64  # ltsoups-mini: vision width and joint embedding size
PROMPTS = ["a photo of a cat.", "a photo of a dog."]


def _load(checkpoint: Path, features: FeatureSpace):
    return OpenClipBackbone(OpenClipParams(pretrained=str(checkpoint), features=features)).load(num_classes=2)


def embed(text: TextTower | None) -> torch.Tensor:
    assert text is not None
    with torch.no_grad():
        return text.encoder(text.tokenize(PROMPTS))


def _images() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_before_the_projection_the_encoder_stops_at_the_pooled_token(random_mini_clip: Path) -> None:
    after, before = _load(random_mini_clip, FeatureSpace.AFTER_PROJECTION), _load(random_mini_clip, "before-projection")
    assert (after.feature_dim, before.feature_dim) == (EMBED, WIDTH)
    projection = after.image_encoder.proj.detach()
    assert projection.shape == (WIDTH, EMBED)
    assert "proj" not in before.image_encoder.state_dict()  # nothing to train, merge or save
    with torch.no_grad():
        pooled = before.image_encoder(_images())
        projected = after.image_encoder(_images())
    assert pooled.shape == (3, WIDTH)
    torch.testing.assert_close(pooled @ projection, projected)


def test_before_the_projection_text_features_are_mapped_back_by_its_transpose(random_mini_clip: Path) -> None:
    """The authors' head init: normalise(normalise(text) @ proj^T)."""
    after, before = _load(random_mini_clip, FeatureSpace.AFTER_PROJECTION), _load(random_mini_clip, "before-projection")
    text = embed(after.text_tower)  # normalised, in the joint space
    expected = F.normalize(text @ after.image_encoder.proj.detach().t(), dim=-1)
    torch.testing.assert_close(embed(before.text_tower), expected)
    assert embed(before.text_tower).shape == (2, WIDTH)


def test_the_default_is_after_the_projection() -> None:
    assert validate_config({}).backbone.params.features is FeatureSpace.AFTER_PROJECTION


def test_before_the_projection_needs_a_tower_with_one() -> None:
    """A tower without a `proj` matrix (e.g. a modified ResNet's attention pool) is refused, by name."""
    backbone = OpenClipBackbone(OpenClipParams(model="RN50", features="before-projection"))
    with pytest.raises(ValueError, match="before-projection needs an open_clip ViT image tower with a `proj` matrix"):
        backbone._drop_projection(torch.nn.Linear(2, 2))
