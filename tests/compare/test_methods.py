"""The methods file: the shipped baselines as configs over the user's params, and a user's own methods."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltsoups.cli.app import app
from ltsoups.compare.methods import load_methods
from ltsoups.compare.run import ComparisonDisplay, ComparisonRequest, run_comparison
from ltsoups.config import ConfigError, ConfigLayer, override_layer

SHIPPED = (
    "lt-soups", "lt-soups-uniform", "lt-soups-lambda-n", "lt-soups-search",
    "full-ft", "full-ft+cr", "crt", "lws", "model-soups", "soups-rho",
    "linear-probe", "zero-shot", "lift-adaptformer", "lift-lora", "ensemble",
)  # fmt: skip
BASE = [override_layer("plan.sampler.params.rounds=3"), override_layer("merge.merger.params.lambda=0.5")]


def configs(methods_file: Path | None = None) -> dict:
    methods = load_methods(methods_file)
    run = ConfigLayer("compare: seed 7", {"seed": 7}, user=True)
    return {name: method.config(BASE, "test", run, Path("/tmp/run")) for name, method in methods.items()}


def test_the_shipped_methods_are_the_papers_baselines_as_configured_today() -> None:
    assert tuple(load_methods()) == SHIPPED
    c = configs()
    assert all(config.seed == 7 and config.workdir == "/tmp/run" and config.members is None for config in c.values())
    assert c["lt-soups"].plan.sampler.params.rounds == 3  # the user's params, as they are
    assert c["lt-soups-uniform"].merge.merger.name == "uniform"
    assert c["lt-soups-uniform"].plan == c["lt-soups"].plan and c["lt-soups-uniform"].train == c["lt-soups"].train
    for name, mode in (("lt-soups-lambda-n", "lambda-n"), ("lt-soups-search", "per-factor")):
        search = c[name].merge.search
        assert search.enabled and search.mode.value == mode, name
        assert c[name].model_dump(exclude={"merge"}) == c["lt-soups"].model_dump(exclude={"merge"}), name
        assert c[name].merge.merger == c["lt-soups"].merge.merger, name
    for name, cr in (("full-ft", False), ("full-ft+cr", True), ("crt", True), ("lws", True), ("model-soups", False)):
        assert c[name].plan.sampler.name == "full-data" and c[name].retrain_head.enabled is cr, name
        assert c[name].merge.merger.name == "uniform", name
    assert c["full-ft"].plan.sampler.params.replicas == 1 and c["model-soups"].plan.sampler.params.replicas == 2
    assert c["crt"].train.loss.name == "cross-entropy" and c["full-ft"].train.loss.name == "logit-adjusted"
    assert c["soups-rho"].plan.sampler.name == "fixed-ratio" and c["soups-rho"].plan.sampler.params.ratio == 8
    assert c["linear-probe"].plan.sampler.name == "zero-shot" and c["linear-probe"].retrain_head.enabled
    assert not c["zero-shot"].retrain_head.enabled
    assert c["lift-adaptformer"].backbone.params.peft.value == "adaptformer"
    assert c["lift-lora"].backbone.params.peft.value == "lora" and not c["lift-lora"].retrain_head.enabled
    assert load_methods()["ensemble"].ensemble_of == "lt-soups" and c["ensemble"] == c["lt-soups"]


def test_a_users_file_adds_methods_and_replaces_shipped_ones(tmp_path: Path) -> None:
    path = tmp_path / "methods.yaml"
    path.write_text(
        "methods:\n"
        "  soups-rho-16: {description: Soups-rho at 16, extends: soups-rho, set: [plan.sampler.params.ratio=16]}\n"
        "  zero-shot: {description: two prompts, params: {head: {templates: ['a {}.', 'a photo of a {}.']}}}\n"
    )
    methods = load_methods(path)
    assert list(methods)[-1] == "soups-rho-16"
    c = configs(path)
    assert c["soups-rho-16"].plan.sampler.params.ratio == 16 and c["soups-rho-16"].merge.merger.name == "uniform"
    assert c["zero-shot"].head.templates == ("a {}.", "a photo of a {}.")
    assert c["zero-shot"].retrain_head.enabled  # the shipped zero-shot's settings are replaced, not merged


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("a: {description: x, extends: nowhere}", "methods.a.extends: 'nowhere' is not allowed: no such method"),
        ("a: {description: x, extends: b}\n  b: {description: y, extends: a}", "a cycle: a -> b -> a"),
        ("a: {description: x, ensemble_of: lt-soups, set: [seed=1]}", "ensemble_of takes the members"),
        ("a: {description: x, sett: [seed=1]}", "methods.a.sett"),
        ("a: {description: x, ensemble_of: ensemble}", "an ensemble has no members"),
        ("'../out': {description: x}", "methods.../out.[key]: '../out' is not allowed: String should match pattern"),
        ("'a b': {description: x}", "'a b' is not allowed: String should match pattern"),
    ],
)
def test_a_bad_methods_file_names_the_method_and_the_problem(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "methods.yaml"
    path.write_text(f"methods:\n  {entry}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_methods(path)


def test_a_bad_override_names_the_method(tmp_path: Path) -> None:
    path = tmp_path / "methods.yaml"
    path.write_text("methods:\n  broken: {description: x, set: ['merge.merger.params.lambda=1.5']}\n")
    with pytest.raises(ConfigError, match=r"method broken(.|\n)*merge.merger.params.lambda: 1.5 is not allowed"):
        load_methods(path)["broken"].config(BASE, "params.yaml", ConfigLayer("seed 0", {"seed": 0}, True), tmp_path)


@pytest.mark.parametrize(
    ("override", "section"), [("data.dataset.params.rho=10", "data"), ("runtime.precision=bf16", "runtime")]
)
def test_a_method_that_changes_what_runs_share_is_refused_before_anything_runs(
    tmp_path: Path, override: str, section: str
) -> None:
    path = tmp_path / "methods.yaml"
    path.write_text(f"methods:\n  other: {{description: x, set: [{override}]}}\n")
    methods = load_methods(path)
    request = ComparisonRequest(tmp_path / "c", BASE, "test", [methods["lt-soups"], methods["other"]], [0], "lt-soups")
    with pytest.raises(ConfigError, match=rf"methods\.other: .* changes the {section} section"):
        run_comparison(request, ComparisonDisplay())
    assert not (tmp_path / "c").exists()


def test_runs_with_other_class_sizes_are_refused_before_any_training(tmp_path: Path, random_mini_clip: Path) -> None:
    from tiny_config import tiny_params, write_params

    from ltsoups.config import user_layers

    params = write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(tmp_path / "outputs")))
    layers, source = user_layers(params, ["compare.vary_with_seed=[data.dataset.params.n_max]"])
    request = ComparisonRequest(tmp_path / "c", layers, source, [load_methods()["zero-shot"]], [0, 1], "zero-shot")
    with pytest.raises(ConfigError, match="zero-shot seed 1 has other class sizes than zero-shot seed 0"):
        run_comparison(request, ComparisonDisplay())
    assert not (tmp_path / "c" / "store" / "members").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "lt-soups", "-m", "lt-soups"], "--method: 'lt-soups' is not allowed: given twice"),
        (["-m", "full-ft", "--reference", "lt-sups"], "--reference: 'lt-sups' is not allowed: not among the methods"),
        (["--resamples", "0"], "--resamples: 0 is not allowed: at least one resample"),
        (["report", "--resamples", "0"], "--resamples: 0 is not allowed: at least one resample"),
        (["--grid", "--eta", "0.33333", "--eta", "0.333331"], "values that share a folder (eta-0.3333)"),
    ],
)
def test_the_cli_refuses_bad_comparison_settings_before_anything_runs(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["compare", *args, "--out", str(tmp_path / "c")], env={"COLUMNS": "240"})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "c").exists()


def test_the_cli_refuses_an_unknown_method_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", "-m", "lt-soups", "-m", "nope", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "--method: 'nope' is not allowed: unknown method; known: lt-soups, lt-soups-uniform" in result.output
    assert not (tmp_path / "c").exists()
    missing = CliRunner().invoke(app, ["compare", "report", "--out", str(tmp_path / "c")])
    assert missing.exit_code == 1 and "no comparison at" in missing.output


def test_keys_that_vary_with_the_seed_move_with_it() -> None:
    from ltsoups.compare.run import run_layer
    from ltsoups.config import validate_layers

    layers = [
        override_layer("seed=2"),
        override_layer("data.dataset.params.seed=5"),
        override_layer("compare.vary_with_seed=[data.dataset.params.seed]"),
    ]
    run = validate_layers([*layers, run_layer(validate_layers(layers, "test"), 4)], "test")
    assert (run.seed, run.data.dataset.params.seed) == (4, 7)


def test_only_an_integer_setting_can_vary_with_the_seed() -> None:
    from ltsoups.compare.run import run_layer
    from ltsoups.config import load_config

    with pytest.raises(ConfigError, match=r"compare.vary_with_seed: 'data.dataset.params.rho' is not allowed"):
        run_layer(load_config(None, ["compare.vary_with_seed=[data.dataset.params.rho]"]), 1)
