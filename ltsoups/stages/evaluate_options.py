"""What the evaluate stage scores and saves besides the results table (light: the CLI imports it at startup)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SavedLogits(str, Enum):
    """Which models' test and validation logits the stage saves (ImageNet-LT: 200 MB per model on test)."""

    ALL = "all"
    FINAL = "final"
    """the run's final model: stage 1 + CR, or stage 1 when CR is off"""
    NONE = "none"


@dataclass(frozen=True)
class EvaluateOptions:
    save_logits: SavedLogits = SavedLogits.FINAL
    running_soups: bool = True
    """also score the running soup after each factor but the last"""
