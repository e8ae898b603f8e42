"""Plugin discovery through entry points: built-ins and third-party packages alike."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from ltsoups.contracts import Backbone, Dataset, Loss, Merger, Plugin, PluginParams, Runner, Sampler


class PluginKind(str, Enum):
    """The kinds of plugin, each with its entry-point group and contract."""

    SAMPLER = "samplers"
    LOSS = "losses"
    MERGER = "mergers"
    BACKBONE = "backbones"
    DATASET = "datasets"
    RUNNER = "runners"

    @property
    def group(self) -> str:
        return f"ltsoups.{self.value}"

    @property
    def singular(self) -> str:
        return self.value.removesuffix("es") if self is PluginKind.LOSS else self.value.removesuffix("s")

    @property
    def contract(self) -> type[Plugin]:
        return _CONTRACTS[self]


_CONTRACTS: dict[PluginKind, type[Plugin]] = {
    PluginKind.SAMPLER: Sampler,
    PluginKind.LOSS: Loss,
    PluginKind.MERGER: Merger,
    PluginKind.BACKBONE: Backbone,
    PluginKind.DATASET: Dataset,
    PluginKind.RUNNER: Runner,
}


class PluginChoice(Protocol):
    """A configured plugin: its kind, name and validated params (the config's plugin specs)."""

    kind: ClassVar[PluginKind]
    name: str
    params: PluginParams


class PluginError(ValueError):
    """A plugin name or its parameters are not acceptable."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin: where it comes from and how to load it."""

    kind: PluginKind
    name: str
    target: str
    distribution: str

    def load(self) -> type[Plugin]:
        try:
            loaded = _load_entry_point(self.kind.group, self.name, self.target)
        except Exception as err:
            raise PluginError(
                f"{self.kind.singular} plugin {self.name!r} from {self.distribution} cannot be loaded "
                f"({self.target}): {type(err).__name__}: {err}"
            ) from err
        if not (isinstance(loaded, type) and issubclass(loaded, self.kind.contract)):
            raise PluginError(
                f"{self.kind.singular} plugin {self.name!r} from {self.distribution} ({self.target}) "
                f"is not a {self.kind.contract.__name__}"
            )
        return loaded


@cache
def _load_entry_point(group: str, name: str, target: str) -> Any:
    return EntryPoint(name=name, value=target, group=group).load()


class PluginRegistry:
    """Every plugin of every kind, indexed by name."""

    def __init__(self, entries: Iterable[PluginEntry]) -> None:
        self._entries: dict[PluginKind, dict[str, PluginEntry]] = {kind: {} for kind in PluginKind}
        for entry in entries:
            existing = self._entries[entry.kind].get(entry.name)
            if existing is not None and existing.target != entry.target:
                raise PluginError(
                    f"{entry.kind.singular} plugin name {entry.name!r} is registered twice: "
                    f"by {existing.distribution} ({existing.target}) and by {entry.distribution} ({entry.target})"
                )
            self._entries[entry.kind][entry.name] = entry

    @classmethod
    def installed(cls) -> PluginRegistry:
        """The registry of what installed distributions declare under the ltsoups groups."""
        entries = []
        for kind in PluginKind:
            for point in entry_points(group=kind.group):
                dist = point.dist
                origin = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
                entries.append(PluginEntry(kind, point.name, point.value, origin))
        return cls(entries)

    def entries(self, kind: PluginKind) -> list[PluginEntry]:
        return [self._entries[kind][name] for name in sorted(self._entries[kind])]

    def names(self, kind: PluginKind) -> list[str]:
        return sorted(self._entries[kind])

    def entry(self, kind: PluginKind, name: str) -> PluginEntry:
        try:
            return self._entries[kind][name]
        except KeyError:
            installed = ", ".join(self.names(kind)) or "none"
            raise PluginError(f"unknown {kind.singular} {name!r}; installed: {installed}") from None

    def params_model(self, kind: PluginKind, name: str) -> type[PluginParams]:
        return self.entry(kind, name).load().Params

    def create(self, kind: PluginKind, name: str, params: dict[str, Any] | PluginParams | None = None) -> Any:
        """An instance of plugin ``name`` with validated params."""
        plugin_cls = self.entry(kind, name).load()
        if not isinstance(params, PluginParams):
            try:
                params = plugin_cls.Params.model_validate(params or {})
            except ValidationError as err:
                raise PluginError(f"{kind.singular} {name!r}: {err}") from err
        return plugin_cls(params)

    def instantiate(self, choice: PluginChoice) -> Any:
        """The plugin a config names, built with the params the config validated."""
        return self.create(choice.kind, choice.name, choice.params)


@cache
def installed_registry() -> PluginRegistry:
    return PluginRegistry.installed()
