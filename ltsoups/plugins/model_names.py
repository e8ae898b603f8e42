"""Model names a backbone's library does not have: the error that names the field, the value and the closest names."""

from __future__ import annotations

import difflib

# Model names open_clip and timm resolve from elsewhere than their own registries (a Hugging Face repo, a folder).
MODEL_SCHEMAS = ("hf-hub:", "local-dir:")


def no_such_model(name: str, architecture: str, known: list[str], library: str) -> ValueError:
    """The error for a ``backbone.params.model`` its library does not have: the closest of its ``known``
    architectures to ``architecture`` (the name's), and how to list them all."""
    near = difflib.get_close_matches(architecture, known, n=4)
    return ValueError(
        f"backbone.params.model: {name!r} is not allowed: {library} has no such model"
        + (f"; closest: {', '.join(near)}" if near else "")
        + f" (all {len(known)}: python -c 'import {library}; print({library}.list_models())')"
    )
