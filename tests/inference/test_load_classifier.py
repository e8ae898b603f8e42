"""load_classifier: a checkpoint and its sidecar are enough to rebuild the classifier the run evaluated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from evaluated_split import evaluated_test_split

import ltsoups
from ltsoups.checkpoint import CheckpointError, open_checkpoint, sidecar_path
from ltsoups.classifier_spec import ClassifierSpec
from ltsoups.plugins.backbones import OpenClipBackbone

CHECKPOINTS = (
    "theta0/theta0.safetensors",
    "members/f1-r0/weights.safetensors",
    "soup/running/upto-f1.safetensors",
    "soup/soup.safetensors",
    "final/final.safetensors",
)


def _copy(checkpoint: Path, folder: Path) -> Path:
    folder.mkdir()
    shutil.copyfile(checkpoint, folder / checkpoint.name)
    shutil.copyfile(sidecar_path(checkpoint), sidecar_path(folder / checkpoint.name))
    return folder / checkpoint.name


@pytest.mark.slow
def test_a_copied_final_model_alone_gives_the_evaluated_logits(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = _copy(finished_run / "outputs" / "final" / "final.safetensors", tmp_path / "alone")
    evaluated = evaluated_test_split(finished_run)
    monkeypatch.chdir(copied.parent)  # no params.yaml, no workdir here

    def no_pretrained_weights(self: OpenClipBackbone) -> None:
        raise AssertionError("the pretrained weights were read: the checkpoint holds them all")

    monkeypatch.setattr(OpenClipBackbone, "_local_weights", no_pretrained_weights)
    loaded = ltsoups.load_classifier(copied.name)
    assert not loaded.model.training
    assert loaded.class_names == evaluated.split.class_names
    with torch.no_grad():
        evaluated.check(loaded.model(evaluated.inputs(loaded)))


@pytest.mark.slow
def test_every_stage_output_records_the_same_classifier(finished_run: Path) -> None:
    outputs = finished_run / "outputs"
    counts = json.loads((outputs / "data" / "counts.json").read_text())
    specs = [open_checkpoint(outputs / name).sidecar.classifier for name in CHECKPOINTS]
    assert all(isinstance(spec, ClassifierSpec) for spec in specs)
    assert all(spec == specs[0] for spec in specs)
    spec = specs[0]
    assert spec is not None
    assert list(spec.train_counts) == counts
    assert spec.backbone.name == "open-clip" and spec.backbone.params["model"] == "ltsoups-mini"
    assert spec.backbone.peft_folded is False
    assert spec.head_scale == 30.0 and spec.preprocess.image_size == 32


@pytest.mark.slow
def test_a_checkpoint_without_a_classifier_record_is_refused_by_name(finished_run: Path, tmp_path: Path) -> None:
    copied = _copy(finished_run / "outputs" / "final" / "final.safetensors", tmp_path / "old")
    side = sidecar_path(copied)
    record = json.loads(side.read_text())
    del record["classifier"]
    side.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="no 'classifier' record"):
        ltsoups.load_classifier(copied)


@pytest.mark.slow
def test_import_ltsoups_stays_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, ltsoups; assert 'torch' not in sys.modules; assert callable(ltsoups.load_classifier)"
    subprocess.run([sys.executable, "-c", code], check=True)
