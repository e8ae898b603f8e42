import re
from pathlib import Path

import pytest
from tiny_config import validate_config

from ltsoups.config import ConfigError, load_config
from ltsoups.registry import PluginKind


def test_defaults_are_the_paper_settings() -> None:
    config = load_config(None)
    train = config.train
    assert (train.optim.lr, train.optim.batch_size, train.schedule.final_lr_fraction) == (3e-4, 128, 0.1)
    assert (train.ema.decay, train.ema.init.value, train.selection.mode.value) == (0.99, "theta0", "final")
    assert (train.schedule.warmup_min_steps, train.schedule.warmup_fraction) == (100, 0.01)
    assert config.merge.merger.params.model_dump(mode="json") == {"lambda": 0.7, "weights": "previous", "within": None}
    assert config.plan.sampler.params.model_dump() == {"rounds": 5, "replicas": 2, "shared_subset": False}
    assert config.head.scale == 30.0


def test_overrides_use_the_same_models_as_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("merge:\n  merger:\n    name: recursive\n    params: {lambda: 0.3}\n")
    config = load_config(params, ["plan.sampler.params.rounds=3", "train.optim.lr=3e-5"])
    assert config.merge.merger.params.lam == 0.3
    assert config.plan.sampler.params.rounds == 3
    assert config.train.optim.lr == 3e-5


def test_plugin_params_are_validated_once_and_held_typed() -> None:
    from ltsoups.plugins.samplers import ProgressiveParams

    config = load_config(None, ["plan.sampler.params.rounds=3"])
    assert type(config.plan.sampler.params) is ProgressiveParams
    assert config.section_hash("plan") == load_config(None, ["plan.sampler.params.rounds=3"]).section_hash("plan")


def test_every_plugin_field_of_the_schema_is_found() -> None:
    from ltsoups.config import plugin_locations

    assert dict(plugin_locations()) == {
        "runner": PluginKind.RUNNER,
        "data.dataset": PluginKind.DATASET,
        "backbone": PluginKind.BACKBONE,
        "plan.sampler": PluginKind.SAMPLER,
        "train.loss": PluginKind.LOSS,
        "merge.merger": PluginKind.MERGER,
        "retrain_head.loss": PluginKind.LOSS,
    }


def test_switching_plugin_drops_only_the_defaults_of_the_old_plugin() -> None:
    config = load_config(None, ["plan.sampler.name=fixed-ratio", "plan.sampler.params.ratio=8"])
    assert config.plan.sampler.params.model_dump() == {"ratio": 8, "replicas": 2}


def test_a_param_written_before_a_plugin_switch_applies_to_the_new_plugin() -> None:
    config = load_config(None, ["plan.sampler.params.replicas=1", "plan.sampler.name=full-data"])
    assert config.plan.sampler.name == "full-data"
    assert config.plan.sampler.params.replicas == 1


def test_a_param_the_new_plugin_does_not_take_is_an_error_naming_it(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("plan:\n  sampler: {name: progressive, params: {rounds: 3, replicas: 1}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(params, ["plan.sampler.name=full-data"])
    (issue,) = info.value.issues
    assert issue.location == "plan.sampler.params.rounds"
    assert issue.value == 3
    assert f"set in {params} for 'progressive'" in issue.message
    assert "--set plan.sampler='{name: full-data, params: {...}}'" in issue.message


def test_naming_a_plugin_with_its_params_replaces_the_choice(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("plan:\n  sampler: {name: progressive, params: {rounds: 3, replicas: 1}}\n")
    config = load_config(params, ["plan.sampler={name: full-data, params: {replicas: 3}}"])
    assert (config.plan.sampler.name, config.plan.sampler.params.replicas) == ("full-data", 3)


def test_a_file_that_switches_plugin_keeps_its_own_params(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("plan:\n  sampler: {name: fixed-ratio, params: {ratio: 4}}\n")
    config = load_config(params, ["plan.sampler.params.replicas=3"])
    assert config.plan.sampler.params.model_dump() == {"ratio": 4, "replicas": 3}


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
    assert any(line.startswith("bogus: 1 is not allowed: unknown key; allowed: seed, preset,") for line in lines)


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


def test_how_val_is_predicted_joins_a_training_hash_only_with_best_val_selection() -> None:
    tta = ["evaluation.ensemble.mode=five-crop"]
    members = ("data", "backbone", "head", "train")
    assert load_config(None).section_hash(*members) == load_config(None, tta).section_hash(*members)
    best_val = ["train.selection.mode=best-val"]
    assert load_config(None, best_val).section_hash(*members) != load_config(None, [*best_val, *tta]).section_hash(
        *members
    )
    head_best_val = ["retrain_head.selection.mode=best-val"]
    assert load_config(None, head_best_val).section_hash("retrain_head") != load_config(
        None, [*head_best_val, *tta]
    ).section_hash("retrain_head")
    assert load_config(None, head_best_val).section_hash(*members) == load_config(
        None, [*head_best_val, *tta]
    ).section_hash(*members)  # CR's selection does not touch the members


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("retrain_head.sampling.samples_per_visit=2", "samples_per_visit 2 has no effect with mode instance-balanced"),
        ("evaluation.ensemble.expand=10", "expand 10 has no effect with mode none"),
        ("retrain_head.head_init=zero", "Input should be 'merged' or 'random'"),
        ("evaluation.crop.fraction=0", "greater than 0"),
    ],
)
def test_a_setting_that_would_not_apply_is_an_error(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_lws_scales_the_class_vectors_it_is_given_never_random_ones() -> None:
    with pytest.raises(ConfigError, match=r"trains: class-scale \(LWS\).*head_init is random"):
        load_config(None, ["retrain_head.trains=class-scale", "retrain_head.head_init=random"])
    assert load_config(None, ["retrain_head.trains=class-scale"]).retrain_head.head_init.value == "merged"


def test_class_balanced_sampling_visits_take_kangs_four_samples_by_default() -> None:
    sampling = load_config(None, ["retrain_head.sampling.mode=class-balanced"]).retrain_head.sampling
    assert sampling.visit == 4
    assert load_config(None, ["train.sampling={mode: class-balanced, samples_per_visit: 1}"]).train.sampling.visit == 1
