from pathlib import Path

import pytest

from ltsoups.config import ConfigError, load_config, validate_config


def test_defaults_are_the_paper_settings() -> None:
    config = load_config(None)
    optim = config.train.optim
    assert (optim.lr, optim.batch_size, optim.final_lr_fraction, optim.ema_decay) == (3e-4, 128, 0.1, 0.99)
    assert (optim.warmup_min_steps, optim.warmup_fraction) == (100, 0.01)
    assert config.merge.merger.params == {"lambda": 0.7, "weights": "previous"}
    assert config.plan.sampler.params == {"rounds": 5, "replicas": 2, "shared_subset": False}
    assert config.head.scale == 30.0


def test_overrides_use_the_same_models_as_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("merge:\n  merger:\n    name: recursive\n    params: {lambda: 0.3}\n")
    config = load_config(params, ["plan.sampler.params.rounds=3", "train.optim.lr=3e-5"])
    assert config.merge.merger.params["lambda"] == 0.3
    assert config.plan.sampler.params["rounds"] == 3
    assert config.train.optim.lr == 3e-5


def test_switching_plugin_drops_the_old_plugins_params() -> None:
    config = load_config(None, ["plan.sampler.name=fixed-ratio", "plan.sampler.params.ratio=8"])
    assert config.plan.sampler.params == {"ratio": 8, "replicas": 2}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(
            {
                "merge": {"merger": {"params": {"lambda": 1.5}}},
                "plan": {"sampler": {"params": {"rounds": -1, "replicas": 0}}},
                "train": {"loss": {"name": "nope"}, "optim": {"lr": "fast"}},
                "bogus": 1,
            }
        )
    lines = [str(issue) for issue in info.value.issues]
    assert str(info.value).splitlines() == ["6 problem(s) in params:", *(f"  - {line}" for line in lines)]
    assert "merge.merger.params.lambda: 1.5 is not allowed: Input should be less than or equal to 1" in lines
    assert "plan.sampler.params.rounds: -1 is not allowed: Input should be greater than or equal to 0" in lines
    assert "plan.sampler.params.replicas: 0 is not allowed: Input should be greater than or equal to 1" in lines
    assert any(
        line.startswith("train.loss.name: 'nope' is not allowed: unknown loss 'nope'; installed:") for line in lines
    )
    assert any(line.startswith("train.optim.lr: 'fast' is not allowed") for line in lines)
    assert "bogus: 1 is not allowed: unknown key" in lines


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("merge: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params\.yaml.*malformed YAML"):
        load_config(params)


def test_config_hash_follows_the_sections_a_stage_reads() -> None:
    base = load_config(None)
    other_lambda = load_config(None, ["merge.merger.params.lambda=0.5"])
    assert base.section_hash("data", "backbone", "head", "train") == other_lambda.section_hash(
        "data", "backbone", "head", "train"
    )
    assert base.section_hash("merge") != other_lambda.section_hash("merge")
