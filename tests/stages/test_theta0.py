"""theta_0 from a local open_clip file: the same plugin that loads pretrained tags, its text tower as the head."""

from pathlib import Path

import torch
from tiny_config import tiny_params, validate_config

from ltsoups.io.safetensors import load_tensors
from ltsoups.model import prompt_embeddings
from ltsoups.plugins.backbones import OpenClipBackbone, OpenClipParams
from ltsoups.runtime import Runtime, RuntimeSettings
from ltsoups.stages.context import RunContext
from ltsoups.stages.theta0 import build_theta0
from ltsoups.workspace import Workspace

CPU = Runtime.of(RuntimeSettings(device="cpu"))


def test_head_is_the_text_embedding_of_each_class_prompt(random_mini_clip: Path, tmp_path: Path) -> None:
    config = validate_config(tiny_params(random_mini_clip, workdir=str(tmp_path)))
    context = RunContext(config)
    checkpoint = build_theta0(context, Workspace(tmp_path))
    head = load_tensors(checkpoint.path)["head.weight"]
    names = list(context.splits.train.class_names)
    backbone = OpenClipBackbone(OpenClipParams(pretrained=str(random_mini_clip))).load(num_classes=len(names))
    expected = prompt_embeddings(backbone.text_tower, names, ("a photo of a {}.",), CPU)
    torch.testing.assert_close(head, expected)
    assert checkpoint.sidecar.class_names == names
    encoder = {
        k.removeprefix("encoder."): v for k, v in load_tensors(checkpoint.path).items() if k.startswith("encoder.")
    }
    assert all(torch.equal(encoder[k], v) for k, v in backbone.image_encoder.state_dict().items())


def test_a_template_ensemble_averages_normalised_prompts(random_mini_clip: Path) -> None:
    backbone = OpenClipBackbone(OpenClipParams(pretrained=str(random_mini_clip))).load(num_classes=2)
    templates = ("a photo of a {}.", "a drawing of a {}.")
    ensemble = prompt_embeddings(backbone.text_tower, ["red_circle"], templates, CPU)
    single = [prompt_embeddings(backbone.text_tower, ["red circle"], (t,), CPU) for t in templates]
    expected = torch.nn.functional.normalize(single[0] + single[1], dim=-1)
    torch.testing.assert_close(ensemble, expected)


def test_without_a_text_tower_the_head_is_the_class_mean_of_features(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224.augreg_in21k", pretrained=False, img_size=32, num_classes=0)
    with torch.no_grad():  # a fresh final LayerNorm gives every feature the same norm: normalising would not show
        vit.norm.weight.normal_()
        vit.norm.bias.normal_()
    weights = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(weights))
    params = {"model": "vit_tiny_patch16_224.augreg_in21k", "pretrained": str(weights), "image_size": 32}
    backbone = {"name": "timm", "params": params}  # at the saved 32 pixels: 4 patches an image, not 196
    context = RunContext(validate_config(tiny_params(weights, backbone=backbone, workdir=str(tmp_path))))
    model, loaded = context.zero_shot_classifier(), context.backbone
    train = context.splits.train
    images = torch.stack([context.preprocess.fixed(train.source.image(i)) for i in range(len(train))])
    with torch.no_grad():
        features = loaded.image_encoder(images)
    features = torch.nn.functional.normalize(features, dim=-1)
    labels = torch.as_tensor(train.labels)
    means = torch.stack([features[labels == c].mean(dim=0) for c in range(train.num_classes)])
    torch.testing.assert_close(model.head.weight, torch.nn.functional.normalize(means, dim=-1), atol=1e-5, rtol=1e-4)
