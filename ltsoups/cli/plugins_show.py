"""`ltsoups plugins show NAME`: a plugin's params, with their types, defaults and descriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ltsoups.cli.common import reports_errors

if TYPE_CHECKING:
    from ltsoups.registry import PluginKind


@reports_errors
def plugins_show(
    name: Annotated[str, typer.Argument(help="a plugin name of `ltsoups plugins list`, e.g. image-folder")],
    kind: Annotated[
        str | None, typer.Option(help="samplers, losses, mergers, backbones, datasets or runners, where names repeat")
    ] = None,
) -> None:
    """Show a plugin's params: name, type (and bounds), default and description; what `params:` accepts."""
    from ltsoups.cli.render import console, params_table
    from ltsoups.params_doc import params_doc
    from ltsoups.registry import PluginError, PluginKind, installed_registry

    registry = installed_registry()
    kinds = list(PluginKind) if kind is None else [_kind(kind)]
    found = [(k, registry.entry(k, name)) for k in kinds if name in registry.names(k)]
    if not found:
        listed = "; ".join(f"{k.value}: {', '.join(registry.names(k))}" for k in kinds)
        raise PluginError(f"no plugin named {name!r}; installed: {listed}")
    for found_kind, entry in found:
        plugin = entry.load()
        console.print(params_table(found_kind, entry, plugin.description, params_doc(plugin.Params)))


def _kind(text: str) -> PluginKind:
    from ltsoups.registry import PluginError, PluginKind

    try:
        return PluginKind(text)
    except ValueError:
        raise PluginError(f"unknown plugin kind {text!r}; kinds: {', '.join(k.value for k in PluginKind)}") from None
