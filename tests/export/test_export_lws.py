"""An LWS model (a learned factor per class on the frozen head) loads alone, predicts and exports with the
logits its evaluation saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluated_split import EvaluatedSplit, evaluated_test_split
from safetensors.torch import load_file
from tiny_config import tiny_params, tiny_training, write_params
from typer.testing import CliRunner

import ltsoups
from ltsoups.cli.app import app
from ltsoups.config import load_config
from ltsoups.export.choices import ExportFormat
from ltsoups.export.head import SCALED_LOGITS
from ltsoups.export.run import export_classifier
from ltsoups.pipeline import run_pipeline
from ltsoups.stages.context import RunContext
from ltsoups.training.loop import SilentObserver
from ltsoups.workspace import Workspace

pytestmark = pytest.mark.slow  # runs the tiny pipeline with LWS first


@pytest.fixture(scope="module")
def lws_run(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> Path:
    """The tiny run with Kang et al.'s LWS as its CR, every stage up to evaluate done."""
    root = tmp_path_factory.mktemp("lws-run")
    lws = tiny_training(augment={"enabled": False}, trains="class-scale", sampling={"mode": "class-balanced"})
    lws["optim"] = {"name": "sgd", "lr": 0.2, "momentum": 0.9, "batch_size": 16}
    write_params(root, tiny_params(random_mini_clip, retrain_head=lws))
    config = load_config(root / "params.yaml", [f"workdir={root / 'outputs'}"])
    run_pipeline(RunContext(config), Workspace(root / "outputs"), lambda name: SilentObserver())
    return root


@pytest.fixture(scope="module")
def lws_model(lws_run: Path) -> tuple[ltsoups.LoadedClassifier, EvaluatedSplit, torch.Tensor]:
    loaded = ltsoups.load_classifier(lws_run / "outputs" / "final" / "final.safetensors")
    evaluated = evaluated_test_split(lws_run)
    return loaded, evaluated, evaluated.inputs(loaded)


def test_the_lws_model_alone_gives_the_evaluated_logits(lws_model) -> None:
    loaded, evaluated, images = lws_model
    factors = loaded.model.state_dict()["head.class_scale"]
    assert not torch.equal(factors, torch.ones_like(factors))
    with torch.no_grad():
        logits = loaded.model(images)
        evaluated.check(logits)
        unscaled = logits / factors
    assert np.abs(unscaled.numpy() - evaluated.saved.logits).max() > 1e-3  # the factors are in what was saved


def test_predict_gives_the_evaluated_classes(lws_run: Path, lws_model, monkeypatch: pytest.MonkeyPatch) -> None:
    _, evaluated, _ = lws_model
    monkeypatch.chdir(lws_run)
    for i in range(len(evaluated.split)):
        evaluated.split.source.image(i).save(lws_run / f"{i:05d}.png")
    result = CliRunner().invoke(app, ["predict", ".", "--out", "predictions.jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (lws_run / "predictions.jsonl").read_text().splitlines()]
    names = list(evaluated.split.class_names)
    top = {int(Path(row["path"]).stem): names.index(row["top"][0]["class"]) for row in rows}
    assert [top[i] for i in range(len(evaluated.split))] == list(evaluated.saved.logits.argmax(axis=1))


def test_open_clip_export_writes_the_factors_beside_the_class_vectors(lws_model, tmp_path: Path) -> None:
    import open_clip

    loaded, evaluated, images = lws_model
    report = export_classifier(loaded, ExportFormat.OPEN_CLIP, tmp_path / "oc", images[:8])
    assert report.max_abs_diff <= 1e-4 and "class_scale" in report.usage
    assert json.loads((tmp_path / "oc" / "head.json").read_text())["logits"] == SCALED_LOGITS
    head = load_file(str(tmp_path / "oc" / "head.safetensors"))
    torch.testing.assert_close(head["class_scale"], loaded.model.state_dict()["head.class_scale"], rtol=0, atol=0)
    open_clip.add_model_config(tmp_path / "oc" / "ltsoups-mini.json")
    weights = str(tmp_path / "oc" / "open_clip_model.safetensors")
    model, _, _ = open_clip.create_model_and_transforms("ltsoups-mini", pretrained=weights)
    with torch.no_grad():
        features = torch.nn.functional.normalize(model.eval().encode_image(images), dim=-1)
        cosines = features @ torch.nn.functional.normalize(head["class_vectors"], dim=-1).T
    evaluated.check(head["class_scale"] * loaded.spec.head_scale * cosines)


def test_onnx_export_holds_the_factors_in_its_graph(lws_model, tmp_path: Path) -> None:
    import onnxruntime

    loaded, evaluated, images = lws_model
    export_classifier(loaded, ExportFormat.ONNX, tmp_path / "onnx", images[:8])
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    evaluated.check(session.run(["logits"], {"images": images.numpy()})[0])
