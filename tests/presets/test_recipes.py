"""The LIFT recipes: params files over any dataset preset, the same as the overrides docs/baselines.md lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ltsoups.config import load_config
from ltsoups.presets import available_presets

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"


def documented_overrides() -> list[str]:
    """The `lift-adaptformer` overrides, as docs/baselines.md lists them (one per line of its text block)."""
    text = (ROOT / "docs" / "baselines.md").read_text()
    block = text.split("<!-- lift-adaptformer overrides -->", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("preset", available_presets())
@pytest.mark.parametrize(("recipe", "peft"), [("lift-adaptformer", "adaptformer"), ("lift-lora", "lora")])
def test_the_recipe_file_is_the_documented_overrides(preset: str, recipe: str, peft: str) -> None:
    from_file = load_config(RECIPES / f"{recipe}.yaml", [f"preset={preset}"])
    overrides = [o.replace("peft=adaptformer", f"peft={peft}") for o in documented_overrides()]
    from_overrides = load_config(None, [f"preset={preset}", *overrides])
    assert from_file.model_dump(exclude={"preset"}) == from_overrides.model_dump(exclude={"preset"})


def test_the_recipe_is_lifts_code() -> None:
    """shared/reference/lift-code-facts.md: SGD 0.01, momentum 0.9, wd 5e-4, no EMA, scale 25, LA, 10 epochs."""
    config = load_config(RECIPES / "lift-adaptformer.yaml", ["preset=cifar100-lt"])
    optim, train = config.train.optim, config.train
    assert (optim.name.value, optim.lr, optim.sgd_momentum, optim.nesterov, optim.weight_decay) == (
        "sgd",
        0.01,
        0.9,
        None,
        5e-4,
    )
    assert (optim.batch_size, train.schedule.epochs, train.ema.enabled, config.head.scale) == (128, 10, False, 25.0)
    assert train.loss.name == "logit-adjusted" and train.loss.params.tau == 1.0
    assert config.backbone.params.peft.value == "adaptformer" and config.backbone.params.features.value == (
        "before-projection"
    )
    assert (config.plan.sampler.name, config.plan.sampler.params.replicas) == ("full-data", 1)
    assert not config.retrain_head.enabled
    assert config.evaluation.ensemble.mode.value == "none"  # the paper's tables: no test-time ensembling
    assert config.data.dataset.name == "cifar100-lt"  # the preset's data stay


def baseline_rows() -> dict[str, list[str]]:
    """docs/baselines.md's table: baseline -> its `--set` overrides (the backticked KEY=VALUE cells)."""
    text = (ROOT / "docs" / "baselines.md").read_text()
    table = text.split("| baseline | overrides |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        name, cell = line.strip("|").split("|")
        rows[name.strip()] = [part for part in re.findall(r"`([^`]+)`", cell) if "=" in part]
    return rows


def test_every_documented_baseline_validates() -> None:
    rows = baseline_rows()
    assert len(rows) >= 12
    for name, overrides in rows.items():
        load_config(None, overrides)  # a ConfigError names the row's bad key
        assert overrides or name.startswith(("LT-Soups (default)", "LIFT")), name


def test_crt_is_kangs() -> None:
    overrides = next(o for name, o in baseline_rows().items() if name.startswith("cRT as Kang"))
    config = load_config(None, overrides)
    assert (config.train.loss.name, config.retrain_head.loss.name) == ("cross-entropy", "cross-entropy")
    assert config.train.sampling.mode.value == "instance-balanced"
    assert config.retrain_head.sampling.mode.value == "class-balanced" and config.retrain_head.sampling.visit == 4
    assert config.retrain_head.head_init.value == "random"
    assert (config.plan.sampler.name, config.plan.sampler.params.replicas) == ("full-data", 1)
    assert not config.train.ema.enabled and not config.retrain_head.ema.enabled


def test_soups_rho_and_model_soups_differ_only_in_the_subset() -> None:
    rows = baseline_rows()
    soups = next(o for name, o in rows.items() if name.startswith("conventional model soups"))
    soups_rho = next(o for name, o in rows.items() if name.startswith("Soups-"))
    assert [o for o in soups if not o.startswith("plan.sampler")] == [
        o for o in soups_rho if not o.startswith("plan.sampler")
    ]
