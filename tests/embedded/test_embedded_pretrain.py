from pathlib import Path

import open_clip
import pytest
from pydantic import ValidationError

from ltsoups.checkpoint import open_checkpoint
from ltsoups.embedded import MODEL_NAME
from ltsoups.embedded.pretrain import pretrain
from ltsoups.embedded.recipe import PretrainConfig
from ltsoups.embedded.task import build_embedded_task
from ltsoups.embedded.zero_shot import ZeroShotReport, per_class_accuracy, zero_shot_predictions, zero_shot_report
from ltsoups.provenance import hash_json


def zero_shot_of(weights: Path, task_seed: int) -> ZeroShotReport:
    """The zero-shot report recomputed from a weights file, on the embedded task's test split."""
    model = open_clip.create_model(MODEL_NAME, pretrained=str(weights))
    task = build_embedded_task(seed=task_seed)
    test = task.test
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    predictions = zero_shot_predictions(model, tokenizer, test.source.pixels, test.class_names)
    return zero_shot_report(per_class_accuracy(test.labels, predictions, test.num_classes), task.train.class_counts())


@pytest.mark.slow
def test_a_short_run_lowers_the_contrastive_loss(tmp_path: Path) -> None:
    config = PretrainConfig(steps=12, batch_size=32, num_pairs=384, eval_pairs=64, warmup_steps=2, lr=2e-3)
    steps: list[int] = []
    out = tmp_path / "mini.safetensors"
    report = pretrain(config, out, on_step=lambda step, total, loss: steps.append(step))
    assert steps == list(range(1, 13))
    assert report.final_loss < report.initial_loss
    checkpoint = open_checkpoint(out, expect_kind="pretrained-backbone")
    # The report is the saved weights' zero-shot accuracy, grouped by the training counts. (Twelve steps leave a
    # model that gives every image one class, so a bound on the accuracy itself would mean nothing.)
    assert report.zero_shot == zero_shot_of(out, config.task_seed)
    assert checkpoint.sidecar.zero_shot == report.zero_shot.model_dump(mode="json")
    assert checkpoint.sidecar.model == "ltsoups-mini"
    assert checkpoint.sidecar.config_sha256 == hash_json(config.model_dump(mode="json"))


def test_config_refuses_unknown_fields_and_partial_batches() -> None:
    with pytest.raises(ValidationError):
        PretrainConfig(step=10)
    with pytest.raises(ValidationError):
        PretrainConfig(batch_size=256, eval_pairs=100)
