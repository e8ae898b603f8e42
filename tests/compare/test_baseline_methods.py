"""The shipped methods are the baselines as the literature defines them, and docs/baselines.md lists each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ltsoups.compare.methods import load_methods
from ltsoups.config import ConfigLayer, LtSoupsConfig, validate_layers
from ltsoups.presets import available_presets

ROOT = Path(__file__).resolve().parents[2]
SEED = ConfigLayer("compare: seed 0", {"seed": 0}, user=True)


def method_config(name: str, *base: ConfigLayer) -> LtSoupsConfig:
    return load_methods()[name].config(list(base), "test", SEED, Path("/tmp/run"))


def preset(name: str) -> ConfigLayer:
    return ConfigLayer(f"preset {name}", {"preset": name}, user=True)


@pytest.mark.parametrize("name", available_presets())
@pytest.mark.parametrize(("method", "peft"), [("lift-adaptformer", "adaptformer"), ("lift-lora", "lora")])
def test_lift_is_lifts_code_over_every_preset(name: str, method: str, peft: str) -> None:
    """shared/reference/lift-code-facts.md: SGD 0.01, momentum 0.9, wd 5e-4, no EMA, scale 25, LA, 10 epochs."""
    config = method_config(method, preset(name))
    optim, train = config.train.optim, config.train
    assert (optim.name.value, optim.lr, optim.sgd_momentum, optim.nesterov, optim.weight_decay) == (
        "sgd",
        0.01,
        0.9,
        None,
        5e-4,
    )
    assert (optim.batch_size, train.schedule.epochs, train.ema.enabled, config.head.scale) == (128, 10, False, 25.0)
    assert (train.schedule.warmup_min_steps, train.schedule.final_lr_fraction) == (0, 0.0)
    assert train.loss.name == "logit-adjusted" and train.loss.params.tau == 1.0
    assert config.backbone.params.peft.value == peft
    assert config.backbone.params.features.value == "before-projection"
    assert (config.plan.sampler.name, config.plan.sampler.params.replicas) == ("full-data", 1)
    assert not config.retrain_head.enabled
    assert config.data == validate_layers([preset(name)], "preset").data  # the preset's data stay


def test_crt_is_kangs() -> None:
    config = method_config("crt")
    assert (config.train.loss.name, config.retrain_head.loss.name) == ("cross-entropy", "cross-entropy")
    assert config.train.sampling.mode.value == "instance-balanced"
    assert config.retrain_head.sampling.mode.value == "class-balanced" and config.retrain_head.sampling.visit == 4
    assert config.retrain_head.head_init.value == "random" and config.retrain_head.enabled
    assert (config.plan.sampler.name, config.plan.sampler.params.replicas) == ("full-data", 1)
    assert not config.train.ema.enabled and not config.retrain_head.ema.enabled
    optim = config.retrain_head.optim  # their classifier optimiser, not CR's fine-tuning one
    kang = ("sgd", 0.2, 0.9, 5.0e-4, 512)
    assert (optim.name.value, optim.lr, optim.momentum, optim.weight_decay, optim.batch_size) == kang
    assert config.retrain_head.schedule.final_lr_fraction == 0


def test_lws_is_kangs_and_differs_from_crt_only_in_its_head() -> None:
    """facebookresearch/classifier-balancing cls_lws.yaml: the stage-1 classifier kept, a factor per class, 5 epochs."""
    crt, lws = method_config("crt"), method_config("lws")
    assert lws.retrain_head.trains.value == "class-scale" and lws.retrain_head.head_init.value == "merged"
    assert lws.retrain_head.schedule.epochs == 5
    assert lws.model_dump(exclude={"retrain_head"}) == crt.model_dump(exclude={"retrain_head"})  # one stage-1 member
    differ = {"trains", "head_init", "schedule"}
    assert lws.retrain_head.model_dump(exclude=differ) == crt.retrain_head.model_dump(exclude=differ)
    assert lws.retrain_head.schedule.model_dump(exclude={"epochs"}) == crt.retrain_head.schedule.model_dump(
        exclude={"epochs"}
    )


def test_soups_rho_and_model_soups_differ_only_in_the_subset() -> None:
    soups, soups_rho = method_config("model-soups"), method_config("soups-rho")
    assert (soups.plan.sampler.name, soups_rho.plan.sampler.name) == ("full-data", "fixed-ratio")
    assert soups.model_dump(exclude={"plan"}) == soups_rho.model_dump(exclude={"plan"})
    assert not soups.retrain_head.enabled


def test_full_ft_and_full_ft_with_cr_differ_only_in_cr() -> None:
    plain, with_cr = method_config("full-ft"), method_config("full-ft+cr")
    assert with_cr.retrain_head.enabled and not plain.retrain_head.enabled
    assert plain.model_dump(exclude={"retrain_head"}) == with_cr.model_dump(exclude={"retrain_head"})
    assert not plain.train.ema.enabled


def test_docs_list_every_shipped_method_and_no_other() -> None:
    text = (ROOT / "docs" / "baselines.md").read_text()
    table = text.split("| method | what it is |", 1)[1].split("\n\n", 1)[0]
    documented = [re.findall(r"`([^`]+)`", line.split("|")[1])[0] for line in table.splitlines()[2:]]
    assert documented == list(load_methods())
