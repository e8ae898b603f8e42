"""Named parameter profiles reproducing the published LT-Soups settings, one YAML file per dataset.

A preset is a partial params.yaml. ``preset: NAME`` in a params file deep-merges it under that file's
keys; ``--set preset=NAME`` deep-merges it over the params file (and under the other ``--set``); see
`ltsoups.config.stacked_layers`, and `ltsoups.cli.preset_warnings` for the warnings naming what was overridden.
"""

from __future__ import annotations

from pathlib import Path

_FOLDER = Path(__file__).parent


def available_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(path.stem for path in _FOLDER.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; the error lists the available ones."""
    if name not in available_presets():
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return _FOLDER / f"{name}.yaml"
