import pytest
import torch

from ltsoups.peft import PeftMethod
from ltsoups.plugins.backbones import OpenClipBackbone, OpenClipParams


@pytest.mark.parametrize("method", [PeftMethod.LORA, PeftMethod.ADAPTFORMER])
def test_adapters_start_as_the_identity_and_alone_are_trainable(random_mini_clip, method: PeftMethod) -> None:
    full = OpenClipBackbone(OpenClipParams(pretrained=str(random_mini_clip))).load().image_encoder
    peft = OpenClipBackbone(OpenClipParams(pretrained=str(random_mini_clip), peft=method, peft_rank=4)).load()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(peft.image_encoder(images), full(images))
    trainable = [name for name, p in peft.image_encoder.named_parameters() if p.requires_grad]
    assert trainable and all(("lora_" in name) or (".adapter." in name) for name in trainable)
    assert sum(p.numel() for p in peft.image_encoder.parameters() if p.requires_grad) < 0.2 * sum(
        p.numel() for p in full.parameters()
    )


def test_adapter_initialisation_is_deterministic(random_mini_clip) -> None:
    params = OpenClipParams(pretrained=str(random_mini_clip), peft=PeftMethod.LORA, peft_rank=4)
    first = OpenClipBackbone(params).load().image_encoder.state_dict()
    second = OpenClipBackbone(params).load().image_encoder.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
