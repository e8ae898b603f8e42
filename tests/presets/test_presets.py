"""The shipped presets: the published settings, valid under the params schema, each with its command."""

from __future__ import annotations

import pytest
from tiny_config import validate_config

from ltsoups.config import ConfigError
from ltsoups.presets import available_presets, preset_path

PUBLISHED = {  # name: (dataset plugin, N, lambda), paper Table 7 and Section 4
    "cifar100-lt": ("cifar100-lt", 5, 0.7),
    "places-lt": ("list-file", 5, 0.7),
    "imagenet-lt": ("list-file", 7, 0.7),
    "inat2018": ("list-file", 8, 0.3),
    "nih-cxr-lt": ("csv", 8, 0.3),
}
ABLATION = {  # the paper states no N or lambda for its TinyImageNet-LT ablation: CIFAR-100-LT's (same rho)
    "tinyimagenet-lt": ("tiny-imagenet-lt", 5, 0.7),
}
SHIPPED = PUBLISHED | ABLATION


def test_every_published_setting_is_shipped() -> None:
    assert available_presets() == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_preset_gives_the_published_setting(name: str) -> None:
    config = validate_config({"preset": name})
    dataset, rounds, lam = SHIPPED[name]
    assert config.data.dataset.name == dataset
    assert config.plan.sampler.params.rounds == rounds
    assert config.plan.sampler.params.replicas == 2
    assert config.merge.merger.params.model_dump(mode="json") == {"lambda": lam, "weights": "previous", "within": None}
    assert config.backbone.params.model == "ViT-B-16" and config.backbone.params.pretrained == "openai"
    for stage in (config.train, config.retrain_head):
        assert (stage.optim.lr, stage.optim.batch_size, stage.schedule.epochs) == (3e-4, 128, 10)
        assert (stage.optim.name.value, stage.ema.decay, stage.selection.mode.value) == ("adamw", 0.99, "final")
    assert config.runtime.precision.value == "bf16"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_preset_takes_the_authors_warmup_crops_and_test_transform(name: str) -> None:
    """Where the paper is silent or its rule degenerates, the authors' code (documented in each preset)."""
    config = validate_config({"preset": name})
    for stage in (config.train, config.retrain_head):
        assert (stage.schedule.warmup_min_steps, stage.schedule.warmup_fraction) == (20, 0.01)
    assert config.train.augment.interpolation.value == "bilinear"
    crop = config.evaluation.crop
    assert (crop.fraction, crop.interpolation.value) == (0.875, "bilinear")
    assert config.evaluation.ensemble.mode.value == "none"  # the paper reports every method without ensembling
    assert config.backbone.params.features.value == "after-projection"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_preset_comments_state_n_share_warmup_and_lambda_side(name: str) -> None:
    comments = " ".join(line for line in preset_path(name).read_text().splitlines() if line.startswith("#"))
    _, rounds, lam = SHIPPED[name]
    assert f"N = {rounds}" in comments and "%" in comments
    assert "Warmup: max(20, 1% of steps)" in comments
    assert f"lambda = {lam} on the PREVIOUS merge" in comments


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_preset_file_opens_with_the_command_that_runs_it(name: str) -> None:
    lines = preset_path(name).read_text().splitlines()
    assert lines[0].startswith("# ")
    assert f"ltsoups run --set preset={name}" in lines[1]


def test_nih_cxr_lt_uses_the_authors_shot_thresholds() -> None:
    thresholds = validate_config({"preset": "nih-cxr-lt"}).data.thresholds
    assert (thresholds.many, thresholds.few) == (1000, 100)


def test_tinyimagenet_lt_is_the_papers_ablation_profile() -> None:
    params = validate_config({"preset": "tinyimagenet-lt"}).data.dataset.params
    assert (params.rho, params.n_max, params.val_per_class) == (100, 500, 20)  # 500..5; val 20, test 30


def test_user_keys_override_the_preset() -> None:
    config = validate_config({"preset": "cifar100-lt", "merge": {"merger": {"params": {"lambda": 0.5}}}})
    assert config.merge.merger.params.lam == 0.5
    assert config.plan.sampler.params.rounds == 5


def test_unknown_preset_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="unknown preset; available: cifar100-lt, imagenet-lt"):
        validate_config({"preset": "imagenet"})
    with pytest.raises(ValueError, match="available: cifar100-lt"):
        preset_path("imagenet")
