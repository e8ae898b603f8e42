import open_clip
import pytest
import torch

from ltsoups.checkpoint import open_checkpoint
from ltsoups.embedded import MODEL_NAME, register_model_config, shipped_weights_path
from ltsoups.plugins.backbones import OpenClipBackbone, OpenClipParams


@pytest.fixture(scope="module")
def shipped() -> open_clip.CLIP:
    register_model_config()
    return open_clip.create_model(MODEL_NAME, pretrained=str(shipped_weights_path()))


def test_shipped_weights_are_small_and_verified() -> None:
    path = shipped_weights_path()
    assert path.stat().st_size < 8 * 2**20
    checkpoint = open_checkpoint(path, expect_kind="pretrained-backbone")
    assert checkpoint.sidecar.model == MODEL_NAME
    assert checkpoint.sidecar.zero_shot["balanced_accuracy"] > 0.25


def test_open_clip_loads_the_shipped_weights(shipped: open_clip.CLIP) -> None:
    tokens = open_clip.get_tokenizer(MODEL_NAME)(["a photo of a red striped triangle."])
    with torch.no_grad():
        text = shipped.encode_text(tokens, normalize=True)
        image = shipped.encode_image(torch.zeros(2, 3, 32, 32), normalize=True)
    assert text.shape == (1, 64) and image.shape == (2, 64)
    assert torch.isfinite(text).all() and torch.isfinite(image).all()


def test_the_backbone_plugin_loads_the_shipped_weights(shipped: open_clip.CLIP) -> None:
    loaded = OpenClipBackbone(OpenClipParams()).load(num_classes=40)
    for name, tensor in shipped.visual.state_dict().items():
        torch.testing.assert_close(loaded.image_encoder.state_dict()[name], tensor, rtol=0, atol=0)
    assert loaded.image_size == 32 and loaded.feature_dim == 64
