"""The timm backbone: a tiny ViT saved to safetensors and loaded by path through the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from ltsoups.contracts import LoadedBackbone
from ltsoups.io.safetensors import CheckpointError
from ltsoups.registry import PluginKind, installed_registry

MODEL = "vit_tiny_patch16_224.augreg_in21k"


def tiny_vit(num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(MODEL, pretrained=False, img_size=32, num_classes=num_classes)


def save(model: torch.nn.Module, path: Path) -> Path:
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(path))
    return path


def load(path: Path, image_size: int = 32) -> LoadedBackbone:
    params = {"model": MODEL, "pretrained": str(path), "image_size": image_size}
    return installed_registry().create(PluginKind.BACKBONE, "timm", params).load(num_classes=7)


@pytest.mark.parametrize("classes", [0, 7])
def test_weights_load_by_path_with_or_without_a_classifier(tmp_path: Path, classes: int) -> None:
    model = tiny_vit(classes)
    loaded = load(save(model, tmp_path / "vit.safetensors"))
    weights = loaded.image_encoder.state_dict()
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items() if name in weights)
    assert not any(name.startswith("head.") for name in weights)
    assert (loaded.feature_dim, loaded.image_size, loaded.text_tower) == (192, 32, None)
    assert loaded.mean == (0.5, 0.5, 0.5)
    with torch.no_grad():
        assert loaded.image_encoder(torch.zeros(2, 3, 32, 32)).shape == (2, 192)


def test_a_different_resolution_resamples_position_embeddings(tmp_path: Path) -> None:
    loaded = load(save(tiny_vit(0), tmp_path / "vit.safetensors"), image_size=48)
    with torch.no_grad():
        assert loaded.image_encoder(torch.zeros(1, 3, 48, 48)).shape == (1, 192)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    state = {name: t for name, t in tiny_vit(0).state_dict().items() if not name.startswith("blocks.0.")}
    save_file({name: t.contiguous() for name, t in state.items()}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match=r"(?s)do not fit timm model .*Missing key"):
        load(tmp_path / "partial.safetensors")


def test_pickle_checkpoints_are_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vit.pth"
    path.write_bytes(b"not read")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(CheckpointError, match="pickles, which ltsoups never loads"):
        load(path)
