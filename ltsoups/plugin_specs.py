"""Plugin choices in a config: a plugin's name and its params, checked against the registry once.

Apart from ``ltsoups.config`` so that a plugin's own Params can name another plugin (a merger's
within-factor step) without importing the application config.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SerializeAsAny, ValidationInfo, field_validator

from ltsoups.contracts import PluginParams
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry
from ltsoups.schema import StrictModel


def registry_from(info: ValidationInfo) -> PluginRegistry:
    """The registry a validation runs against: the one in its context, else the installed plugins."""
    context = info.context or {}
    return context.get("registry") or installed_registry()


class PluginSpec(StrictModel):
    """A plugin by name, with the parameters its own Params model accepts (held validated)."""

    kind: ClassVar[PluginKind]

    name: str = Field(min_length=1, description="a registered plugin name (see `ltsoups plugins list`)")
    params: SerializeAsAny[PluginParams] = Field(
        default_factory=dict, validate_default=True, description="validated by the plugin's Params model"
    )

    @field_validator("name")
    @classmethod
    def _installed(cls, name: str, info: ValidationInfo) -> str:
        registry_from(info).entry(cls.kind, name)  # an unknown name raises, listing what is installed
        return name

    @field_validator("params", mode="before")
    @classmethod
    def _plugin_params(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, PluginParams):
            return value
        if "name" not in info.data:
            return PluginParams()  # the name's own error is reported; params cannot be checked without it
        params_model = registry_from(info).params_model(cls.kind, info.data["name"])
        params = {} if value is None else value  # `params:` left empty in YAML; anything else is validated as written
        return params_model.model_validate(params, context=info.context)  # nested specs: the same registry


class DatasetSpec(PluginSpec):
    kind = PluginKind.DATASET


class BackboneSpec(PluginSpec):
    kind = PluginKind.BACKBONE


class SamplerSpec(PluginSpec):
    kind = PluginKind.SAMPLER


class LossSpec(PluginSpec):
    kind = PluginKind.LOSS


class MergerSpec(PluginSpec):
    kind = PluginKind.MERGER
