"""A context derived for another config shares the loaded dataset, and the classifier where they would agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_config import tiny_params, validate_config

from ltsoups.stages.context import RunContext


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
