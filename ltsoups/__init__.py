"""LT-Soups: subsampled model soups for long-tailed fine-tuning of foundation models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ltsoups.provenance import __version__ as __version__

__all__ = ["LoadedClassifier", "load_classifier"]

if TYPE_CHECKING:
    from ltsoups.inference.classifier import LoadedClassifier, load_classifier


def __getattr__(name: str) -> Any:
    # `import ltsoups` stays cheap: torch loads with the first use of what needs it.
    if name in __all__:
        from ltsoups.inference import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'ltsoups' has no attribute {name!r}")
