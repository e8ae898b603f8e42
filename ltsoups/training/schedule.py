"""Learning-rate schedule: linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_steps(total: int, min_steps: int, fraction: float) -> int:
    """max(min_steps, ceil(fraction * total)), never longer than the run itself."""
    return min(total, max(min_steps, math.ceil(fraction * total)))


def lr_multiplier(step: int, total: int, warmup: int, floor: float) -> float:
    """Factor on the peak lr at ``step``: (step+1)/warmup during warmup, then cosine from 1 to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
