"""A timm backbone's classifier exports to a checkpoint timm loads strictly, with its head beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_config import tiny_params, write_params

import ltsoups
from ltsoups.config import load_config
from ltsoups.evaluation import predict
from ltsoups.export.choices import ExportFormat
from ltsoups.export.formats import ExportError
from ltsoups.export.run import export_classifier
from ltsoups.stages.context import RunContext
from ltsoups.stages.theta0 import build_theta0
from ltsoups.workspace import Workspace

MODEL = "vit_tiny_patch16_224"


@pytest.mark.slow
def test_timm_loads_the_export_strictly_and_reproduces_ltsoups_logits(tmp_path: Path) -> None:
    import timm

    weights = tmp_path / "vit.safetensors"
    torch.manual_seed(0)
    save_file(timm.create_model(MODEL, pretrained=False, num_classes=0, img_size=32).state_dict(), str(weights))
    backbone = {"name": "timm", "params": {"model": MODEL, "pretrained": str(weights), "image_size": 32}}
    write_params(tmp_path, tiny_params(weights, backbone=backbone))
    config = load_config(tmp_path / "params.yaml", [f"workdir={tmp_path / 'outputs'}"])
    context = RunContext(config)
    theta0 = build_theta0(context, Workspace(tmp_path / "outputs"))  # its head: class means, no text tower
    test = context.splits.test
    expected = predict(context.classifier_from(theta0), context.evaluation_inputs("test"))

    loaded = ltsoups.load_classifier(theta0.path)
    images = torch.stack([loaded.preprocess(test.source.image(i)) for i in range(len(test))])
    export_classifier(loaded, ExportFormat.TIMM, tmp_path / "timm", images[:8])
    model = timm.create_model(
        MODEL, num_classes=0, checkpoint_path=str(tmp_path / "timm" / "model.safetensors"), img_size=32
    ).eval()
    vectors = load_file(str(tmp_path / "timm" / "head.safetensors"))["class_vectors"]
    with torch.no_grad():
        features = torch.nn.functional.normalize(model(images), dim=-1)
        logits = loaded.spec.head_scale * features @ torch.nn.functional.normalize(vectors, dim=-1).T
    assert (logits - torch.from_numpy(expected)).abs().max() <= 1e-4
    assert (logits.argmax(dim=1) == torch.from_numpy(expected).argmax(dim=1)).all()

    with pytest.raises(ExportError, match="choose one of: timm, onnx"):
        export_classifier(loaded, ExportFormat.OPEN_CLIP, tmp_path / "open-clip", images[:2])
