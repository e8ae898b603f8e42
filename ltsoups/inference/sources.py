"""Which checkpoint a command uses: the run's final model by default, a path, or a registered model's URI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

REGISTRY_PREFIX = "models:/"

RegisteredModelFetcher = Callable[[str], Path]
"""``models:/NAME/VERSION`` -> the path of that version's checkpoint, downloaded with its sidecar."""


def resolve_model(reference: str | None, default: Path, fetch_registered: RegisteredModelFetcher | None) -> Path:
    """The checkpoint ``reference`` names: ``default`` when None, a registered model's when a ``models:/`` URI."""
    if reference is None:
        return default
    if reference.startswith(REGISTRY_PREFIX):
        if fetch_registered is None:
            raise ValueError(f"{reference}: this command cannot read registered models; pass a checkpoint path")
        return fetch_registered(reference)
    return Path(reference)
