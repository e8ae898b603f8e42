"""Config sections as flat MLflow params: ``train.optim.lr = 0.0003``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# MLflow's limits on a param's key and value.
_MAX_KEY, _MAX_VALUE = 250, 6000


def flat_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings joined by dots; lists and None as JSON; long values cut to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        flat[name[:_MAX_KEY]] = text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."
    return flat
