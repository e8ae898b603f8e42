"""A model or pretrained tag open_clip or timm does not have is refused naming the field, the value and what the
library has, before anything is downloaded or built."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltsoups.cli.app import app
from ltsoups.plugins.backbones import OpenClipBackbone, OpenClipParams
from ltsoups.plugins.timm_backbone import TimmBackbone, TimmParams


def test_an_unknown_model_names_the_closest_ones() -> None:
    backbone = OpenClipBackbone(OpenClipParams(model="ViT-B-17", pretrained="openai"))
    with pytest.raises(ValueError, match=r"^backbone\.params\.model: 'ViT-B-17' is not allowed") as info:
        backbone.load(num_classes=2)
    assert "open_clip has no such model; closest: ViT-B-16" in str(info.value)
    with pytest.raises(ValueError, match="'ViT-B-17' is not allowed"):
        backbone.architecture(num_classes=2)  # the checkpoint loaders' path too


def test_an_unknown_tag_lists_the_models_tags() -> None:
    backbone = OpenClipBackbone(OpenClipParams(model="ViT-B-16", pretrained="opena"))
    with pytest.raises(ValueError) as info:
        backbone.load(num_classes=2)
    message = str(info.value)
    assert message.startswith("backbone.params.pretrained: 'opena' is not allowed with model 'ViT-B-16': allowed:")
    assert "openai" in message and message.endswith("or a local .safetensors file")


def test_open_clips_own_spellings_still_resolve() -> None:
    slashed = OpenClipBackbone(OpenClipParams(model="ViT-S/32", pretrained="unused.safetensors"))
    assert slashed.architecture(num_classes=2).output_dim == 384  # open_clip's ViT-S-32


def test_timm_names_are_checked_by_architecture_then_tag(tmp_path: Path) -> None:
    weights = str(tmp_path / "weights.safetensors")  # never read: the name is refused first
    unknown = TimmBackbone(TimmParams(model="vit_small_patch16_225.augreg_in21k", pretrained=weights))
    with pytest.raises(ValueError, match="timm has no such model; closest: vit_small_patch16_224"):
        unknown.load(num_classes=2)
    untagged = TimmBackbone(TimmParams(model="vit_small_patch16_224.augreg_in22k"))
    with pytest.raises(
        ValueError, match=r"no weights tagged 'augreg_in22k' for vit_small_patch16_224; its tags: .*augreg_in21k"
    ):
        untagged.architecture(num_classes=2)


def test_the_cli_prints_the_refusal_without_a_traceback(tmp_path: Path) -> None:
    misspelt = ["--set", "backbone.params.model=ltsoups-mni"]
    result = CliRunner().invoke(
        app,
        ["theta0", "--set", f"workdir={tmp_path}", "--set", "tracking.enabled=false", *misspelt],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert "'ltsoups-mni' is not allowed: open_clip has no such model; closest: ltsoups-mini" in result.output
    assert "Traceback" not in result.output
