"""What a preset gave up and what it replaced: the warnings every command prints when a preset is named.

A preset is a block of values among the user's own (see `ltsoups.config.stacked_layers`). Any key a
user layer sets over it replaces the preset's value, and a preset named with ``--set`` replaces the
params file's values: both are said, key by key, so that a preset never loses (or wins) without a word.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ltsoups.config import ConfigLayer, LayerRole, merged_tree, plugin_locations, stacked_layers

_ABSENT = object()


def _leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every value that is not a mapping; an empty mapping is a value."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _at(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _shown(key: str, tree: dict[str, Any], final: dict[str, Any], plugins: frozenset[str]) -> str:
    """A plugin's params follow its name: a param of ``tree`` lost with its plugin is shown as the plugin's name."""
    spec = key.rsplit(".params.", 1)[0]
    changed = spec != key and spec in plugins and _at(tree, f"{spec}.name") != _at(final, f"{spec}.name")
    return f"{spec}.name" if changed else key


def _setter(key: str, layers: Sequence[ConfigLayer], plugins: frozenset[str]) -> ConfigLayer | None:
    """The last of ``layers`` that writes ``key``, a mapping above it, or (for a param) its plugin's name."""
    parts = key.split(".")
    written = {key, *(".".join(parts[:n]) for n in range(1, len(parts)))}
    spec = key.rsplit(".params.", 1)[0]
    if spec != key and spec in plugins:
        written.add(f"{spec}.name")
    for layer in reversed(layers):
        if written & {leaf for leaf, _ in _leaves(layer.tree)}:
            return layer
    return None


def preset_warnings(layers: Sequence[ConfigLayer]) -> list[str]:
    """One line per kind of override between the preset ``layers`` name and the user's values; none without one."""
    stacked = stacked_layers(layers)
    position = next((i for i, layer in enumerate(stacked) if layer.role is LayerRole.PRESET), None)
    if position is None:
        return []
    preset, below, above = stacked[position], stacked[1:position], stacked[position + 1 :]
    final, _ = merged_tree(layers)
    plugins = frozenset(location for location, _ in plugin_locations())
    name = preset.source.removeprefix("preset ")
    warnings = []

    lost: dict[str, str] = {}
    for key, value in _leaves(preset.tree):
        setter = _setter(key, above, plugins)
        if key != "preset" and _at(final, key) != value and setter is not None:
            lost.setdefault(_shown(key, preset.tree, final, plugins), setter.source)
    if lost:
        keys = ", ".join(f"{key} ({source})" for key, source in lost.items())
        warnings.append(f"preset {name}: {len(lost)} of its values are replaced by yours: {keys}")

    defaults = stacked[0].tree
    for layer in below:
        if layer.role is not LayerRole.PARAMS_FILE:
            continue
        replaced, kept = [], []
        for key, value in _leaves(layer.tree):
            if key == "preset" or _at(final, key) == value:
                if key != "preset" and value != _at(defaults, key) and _at(preset.tree, key) is _ABSENT:
                    kept.append(key)
                continue
            if _setter(key, [preset, *above], plugins) is preset:
                replaced.append(_shown(key, layer.tree, final, plugins))
        if replaced:
            warnings.append(
                f"preset {name} replaces {len(set(replaced))} values of {layer.source}: "
                f"{', '.join(dict.fromkeys(replaced))}; {layer.source} still sets "
                f"{', '.join(kept) if kept else 'nothing else that differs from the defaults'}"
            )
    return warnings
