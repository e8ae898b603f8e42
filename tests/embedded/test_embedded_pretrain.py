from pathlib import Path

import pytest
from pydantic import ValidationError

from ltsoups.checkpoint import open_checkpoint
from ltsoups.embedded.pretrain import PretrainConfig, pretrain
from ltsoups.provenance import hash_json


def test_a_short_run_lowers_the_contrastive_loss(tmp_path: Path) -> None:
    config = PretrainConfig(steps=12, batch_size=32, num_pairs=384, eval_pairs=64, warmup_steps=2, lr=2e-3)
    steps: list[int] = []
    out = tmp_path / "mini.safetensors"
    report = pretrain(config, out, on_step=lambda step, total, loss: steps.append(step))
    assert steps == list(range(1, 13))
    assert report.final_loss < report.initial_loss
    assert 0.0 <= report.zero_shot.balanced_accuracy <= 1.0
    checkpoint = open_checkpoint(out, expect_kind="pretrained-backbone")
    assert checkpoint.sidecar["model"] == "ltsoups-mini"
    assert checkpoint.sidecar["config_sha256"] == hash_json(config.model_dump(mode="json"))


def test_config_refuses_unknown_fields_and_partial_batches() -> None:
    with pytest.raises(ValidationError):
        PretrainConfig(step=10)
    with pytest.raises(ValidationError):
        PretrainConfig(batch_size=256, eval_pairs=100)
