"""A context derived for another config shares the loaded dataset, and the classifier where they would agree;
a context predicts a checkpoint once per weights and split, and another evaluation setting gets its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_config import tiny_params, validate_config

from ltsoups.evaluation import EvaluationInputs, predict
from ltsoups.stages.context import RunContext
from ltsoups.stages.theta0 import build_theta0
from ltsoups.workspace import Workspace


def test_derived_contexts_share_what_they_would_load_the_same(random_mini_clip: Path) -> None:
    base = RunContext(validate_config(tiny_params(random_mini_clip)))
    other_training = base.derive(validate_config(tiny_params(random_mini_clip, seed=4, train={"ema": {"decay": 0.9}})))
    assert other_training.splits is base.splits
    assert other_training._classifier is base._classifier
    with pytest.raises(RuntimeError, match="before loading a checkpoint"):
        base.zero_shot_classifier()  # the shared classifier may hold any weights now

    other_head = base.derive(validate_config(tiny_params(random_mini_clip, head={"scale": 10.0})))
    assert other_head.splits is base.splits and other_head._classifier is not base._classifier
    assert other_head.zero_shot_classifier().head.scale == 10.0  # its own classifier: theta_0 can be built

    other_data = base.derive(
        validate_config(
            tiny_params(
                random_mini_clip,
                seed=1,
                data={
                    "dataset": {
                        "name": "embedded",
                        "params": {"num_classes": 3, "n_max": 8, "rho": 2, "val_per_class": 1, "test_per_class": 1},
                    }
                },
            )
        )
    )
    assert "splits" not in vars(other_data) and len(other_data.splits.train.class_names) == 3


def test_a_checkpoint_is_predicted_once_per_weights_and_evaluation(random_mini_clip: Path, tmp_path: Path) -> None:
    context = RunContext(validate_config(tiny_params(random_mini_clip)))
    theta0 = build_theta0(context, Workspace(tmp_path))
    first = context.checkpoint_logits(theta0, "val")
    assert context.checkpoint_logits(theta0, "val") is first
    unkept = EvaluationInputs(context.splits.val, context.preprocess, context.runtime, keep_bytes=0)
    np.testing.assert_array_equal(first, predict(context.classifier_from(theta0), unkept))
    assert context.checkpoint_logits(theta0, "test").shape[0] == len(context.splits.test)

    cropped = validate_config(tiny_params(random_mini_clip, evaluation={"crop": {"fraction": 0.875}}))
    other = context.derive(cropped)
    assert other.splits is context.splits and other.preprocess != context.preprocess
    assert not np.array_equal(other.checkpoint_logits(theta0, "val"), first)
