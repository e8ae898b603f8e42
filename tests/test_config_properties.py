"""Property-based tests of config loading: random params files end in a valid config or a ConfigError, nothing else."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltsoups.config import ConfigError, LtSoupsConfig, load_config, load_yaml

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            found.update(_leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


DEFAULTS = _leaves(LtSoupsConfig().model_dump(mode="json", by_alias=True))
NUMBERS = sorted(key for key, value in DEFAULTS.items() if type(value) in (int, float))
KEYS = [*sorted(DEFAULTS), "seeds", "train.optim.learning_rate", "plan.sampler.params.ratio", "head"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["name", "params", "lr", "x"]), scalars, max_size=3),
)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested mappings; a key under a value that is not a mapping replaces that value."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return tree


def _load(folder: Path, text: str) -> LtSoupsConfig | None:
    """The config ``text`` gives as a params file, or None for a ConfigError; any other exception fails the test."""
    path = folder / "params.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_config(path)
    except ConfigError:
        return None


@PROPERTY
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_random_values_give_a_valid_config_or_a_config_error(tmp_path: Path, written: dict[str, Any]) -> None:
    _load(tmp_path, yaml.safe_dump(_nested(written)))


@PROPERTY
@given(st.sampled_from(NUMBERS), st.one_of(st.booleans(), st.text(max_size=6), st.sampled_from([math.inf, -math.inf])))
def test_a_number_is_never_made_from_a_boolean_a_string_or_an_infinity(tmp_path: Path, key: str, value: Any) -> None:
    text = yaml.safe_dump(_nested({key: value}))
    config = _load(tmp_path, text)
    if config is not None:  # only a string written unquoted that YAML 1.2 reads as a number (1e5) may pass
        written = _leaves(load_yaml(text))[key]
        assert isinstance(value, str) and type(written) in (int, float) and math.isfinite(written)
        assert _leaves(config.model_dump(mode="json", by_alias=True))[key] == written


@PROPERTY
@given(st.text(max_size=200))
def test_any_text_gives_a_valid_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


@PROPERTY
@given(st.sampled_from(sorted(DEFAULTS)))
def test_a_key_written_twice_is_a_config_error(tmp_path: Path, key: str) -> None:
    text = yaml.safe_dump(_nested({key: DEFAULTS[key]}))
    assert _load(tmp_path, text + text) is None


@pytest.mark.parametrize("key", NUMBERS)
def test_every_number_field_keeps_what_was_written(tmp_path: Path, key: str) -> None:
    """Counted, so that a schema change that loses the number fields cannot leave this file testing nothing."""
    assert len(NUMBERS) >= 20
    config = _load(tmp_path, yaml.safe_dump(_nested({key: DEFAULTS[key]})))
    assert config is not None and _leaves(config.model_dump(mode="json", by_alias=True))[key] == DEFAULTS[key]
