"""Exports load in their own library and give the logits the evaluate stage saved; failures keep nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from evaluated_split import EvaluatedSplit, evaluated_test_split
from safetensors.torch import load_file

import ltsoups
from ltsoups.export.choices import ExportFormat
from ltsoups.export.formats import ExportError
from ltsoups.export.open_clip_format import OpenClipExporter
from ltsoups.export.run import export_classifier


@pytest.fixture(scope="module")
def final_model(finished_run: Path) -> tuple[ltsoups.LoadedClassifier, EvaluatedSplit, torch.Tensor]:
    loaded = ltsoups.load_classifier(finished_run / "outputs" / "final" / "final.safetensors")
    evaluated = evaluated_test_split(finished_run)
    return loaded, evaluated, evaluated.inputs(loaded)


@pytest.mark.slow
def test_open_clip_loads_the_whole_clip_and_the_head_reproduces_the_evaluation(final_model, tmp_path: Path) -> None:
    import open_clip

    loaded, evaluated, images = final_model
    report = export_classifier(loaded, ExportFormat.OPEN_CLIP, tmp_path / "oc", images[:8])
    assert report.max_abs_diff <= 1e-4
    weights = tmp_path / "oc" / "open_clip_model.safetensors"
    open_clip.add_model_config(tmp_path / "oc" / "ltsoups-mini.json")
    reference = open_clip.create_model("ltsoups-mini", pretrained=None).state_dict()
    assert set(load_file(str(weights))) == set(reference)  # text tower and all
    model, _, _ = open_clip.create_model_and_transforms("ltsoups-mini", pretrained=str(weights))  # strict load
    head = load_file(str(tmp_path / "oc" / "head.safetensors"))["class_vectors"]
    with torch.no_grad():
        features = torch.nn.functional.normalize(model.eval().encode_image(images), dim=-1)
        logits = loaded.spec.head_scale * features @ torch.nn.functional.normalize(head, dim=-1).T
    evaluated.check(logits)
    assert "create_model_and_transforms" in report.usage


@pytest.mark.slow
def test_onnx_runtime_reproduces_the_evaluation_at_any_batch_size(final_model, tmp_path: Path) -> None:
    import onnxruntime

    loaded, evaluated, images = final_model
    export_classifier(loaded, ExportFormat.ONNX, tmp_path / "onnx", images[:8])
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    whole = session.run(["logits"], {"images": images.numpy()})[0]
    one = session.run(["logits"], {"images": images[:1].numpy()})[0]
    evaluated.check(whole)
    assert np.abs(one - whole[:1]).max() <= 1e-5


@pytest.mark.slow
def test_timm_export_of_an_open_clip_model_names_the_formats_allowed(final_model, tmp_path: Path) -> None:
    loaded, _, images = final_model
    with pytest.raises(ExportError, match="choose one of: open-clip, onnx"):
        export_classifier(loaded, ExportFormat.TIMM, tmp_path / "timm", images[:2])
    assert not (tmp_path / "timm").exists()


@pytest.mark.slow
def test_an_export_that_does_not_reproduce_the_logits_fails_and_keeps_nothing(
    final_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded, _, images = final_model
    honest = OpenClipExporter.logits

    def off_by_a_little(self: OpenClipExporter, folder: Path, batch: torch.Tensor) -> torch.Tensor:
        return honest(self, folder, batch) + 1e-3

    monkeypatch.setattr(OpenClipExporter, "logits", off_by_a_little)
    with pytest.raises(ExportError, match=r"max abs difference 0\.001 \(allowed 0\.0001\)"):
        export_classifier(loaded, ExportFormat.OPEN_CLIP, tmp_path / "out" / "open-clip", images[:4])
    assert list((tmp_path / "out").iterdir()) == []
