"""The methods of a comparison: named configurations of the pipeline, layered over the user's params.

The shipped ``methods.yaml`` defines the paper's baselines; a user's file adds methods or replaces
them by name. A method's config is the user's params file and --set overrides, then the method's own
params and overrides, then the comparison's seed and workdir: the same layering and validation as
``ltsoups validate``, so a bad override names the method, the field and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError, model_validator

from ltsoups.config import ConfigError, ConfigIssue, ConfigLayer, LtSoupsConfig, read_params_file, validate_layers
from ltsoups.config import override_layer as set_layer
from ltsoups.registry import PluginRegistry
from ltsoups.schema import StrictModel

SHIPPED_METHODS = Path(__file__).with_name("methods.yaml")
REFERENCE = "lt-soups"
METHOD_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
"""A method name is a folder of the comparison (runs/NAME) and part of MLflow metric names: no '/', no space."""


class MethodDefinition(StrictModel):
    """One entry of a methods file."""

    description: str = Field(min_length=1, description="one line: what the method is")
    params: dict[str, Any] = Field(default_factory=dict, description="a partial params mapping, applied first")
    overrides: tuple[str, ...] = Field((), alias="set", description="--set overrides, applied after params")
    extends: str | None = Field(None, description="a method whose params and set come before this one's")
    ensemble_of: str | None = Field(
        None, description="no training of its own: the average of the logits of that method's members"
    )

    @model_validator(mode="after")
    def _ensemble_alone(self) -> MethodDefinition:
        if self.ensemble_of is not None and (self.params or self.overrides or self.extends):
            raise ValueError("ensemble_of takes the members of another method as they are: drop params, set, extends")
        return self


class MethodsFile(StrictModel):
    methods: dict[Annotated[str, StringConstraints(pattern=METHOD_NAME)], MethodDefinition] = Field(
        description="method name -> definition"
    )


@dataclass(frozen=True)
class Method:
    """A resolved method: its config layers (``extends`` unfolded) and, for an ensemble, whose members it averages."""

    name: str
    description: str
    layers: tuple[ConfigLayer, ...]
    ensemble_of: str | None = None

    @property
    def settings(self) -> list[str]:
        """The method's layers as one line each (for listings and tracking)."""
        if self.ensemble_of is not None:
            return [f"ensemble of the {self.ensemble_of} members"]
        return [layer.source.split(": ", 1)[1] for layer in self.layers]

    def config(
        self,
        base: Sequence[ConfigLayer],
        source: str,
        run: ConfigLayer,
        workdir: Path,
        registry: PluginRegistry | None = None,
    ) -> LtSoupsConfig:
        """The method's config for one run (``run_layer``) and workdir, over the user's ``base`` layers.

        ``members`` is cleared: params.yaml's list of DVC member stages belongs to its own plan.
        """
        place = ConfigLayer(f"{run.source}: workdir", {"workdir": str(workdir), "members": None}, True)
        return validate_layers([*base, *self.layers, run, place], f"{source} + method {self.name}", registry)


def load_methods(user_file: Path | None = None) -> dict[str, Method]:
    """The shipped methods, then the user's (a user's method replaces a shipped one of the same name)."""
    definitions = _read(SHIPPED_METHODS)
    if user_file is not None:
        definitions.update(_read(user_file))
    return {name: _resolve(name, definitions, ()) for name in definitions}


def trained_method(name: str, user_file: Path | None = None) -> Method:
    """The method ``name``, to run alone: an ensemble has no training of its own, so it is refused."""
    methods = load_methods(user_file)
    if name not in methods:
        raise ConfigError([ConfigIssue("--method", name, f"unknown method; known: {', '.join(methods)}")], "CLI")
    method = methods[name]
    if method.ensemble_of is not None:
        message = f"an ensemble of the {method.ensemble_of} members is not a pipeline: use `ltsoups compare`"
        raise ConfigError([ConfigIssue("--method", name, message)], "CLI")
    return method


def _read(path: Path) -> dict[str, MethodDefinition]:
    try:
        return dict(MethodsFile.model_validate(read_params_file(path)).methods)
    except ValidationError as err:
        issues = [
            ConfigIssue(".".join(str(part) for part in item["loc"]), item.get("input"), item["msg"])
            for item in err.errors()
        ]
        raise ConfigError(issues, str(path)) from err


def _resolve(name: str, definitions: dict[str, MethodDefinition], chain: tuple[str, ...]) -> Method:
    definition = definitions[name]
    for field, other in (("extends", definition.extends), ("ensemble_of", definition.ensemble_of)):
        if other is not None and other not in definitions:
            known = ", ".join(definitions)
            raise ConfigError([ConfigIssue(f"methods.{name}.{field}", other, f"no such method; known: {known}")], name)
        if other in (*chain, name):
            cycle = " -> ".join((*chain, name, other))
            raise ConfigError([ConfigIssue(f"methods.{name}.{field}", other, f"a cycle: {cycle}")], name)
    if definition.ensemble_of is not None:
        members_of = _resolve(definition.ensemble_of, definitions, (*chain, name))
        if members_of.ensemble_of is not None:
            issue = ConfigIssue(f"methods.{name}.ensemble_of", definition.ensemble_of, "an ensemble has no members")
            raise ConfigError([issue], name)
        return Method(name, definition.description, members_of.layers, definition.ensemble_of)
    layers: list[ConfigLayer] = []
    if definition.extends is not None:
        layers += _resolve(definition.extends, definitions, (*chain, name)).layers
    if definition.params:
        layers.append(ConfigLayer(f"method {name}: params {definition.params}", definition.params, user=True))
    for text in definition.overrides:
        layers.append(ConfigLayer(f"method {name}: {text}", set_layer(text).tree, user=True))
    return Method(name, definition.description, tuple(layers))
