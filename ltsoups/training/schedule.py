"""How many steps a training runs, and its learning rate: linear warmup, then cosine decay to a floor.

No torch here: `ltsoups plan` and `validate` show every member's steps and warmup without loading it.
"""

from __future__ import annotations

import math

from ltsoups.settings import EpochSteps, ScheduleSettings


def steps_per_epoch(size: int, batch_size: int, rule: EpochSteps) -> int:
    """ceil(size / batch_size), the batches of one pass; or the authors' size // batch_size + 1."""
    if rule is EpochSteps.FLOOR_PLUS_ONE:
        return size // batch_size + 1
    return math.ceil(size / batch_size)


def steps_for(size: int, batch_size: int, schedule: ScheduleSettings) -> int:
    """``schedule.epochs`` epochs of ``size`` samples, at least ``schedule.min_steps`` optimizer steps."""
    per_epoch = steps_per_epoch(size, batch_size, schedule.epoch_steps)
    return max(schedule.min_steps, math.ceil(schedule.epochs * per_epoch))


def warmup_steps(total: int, min_steps: int, fraction: float) -> int:
    """max(min_steps, ceil(fraction * total)), never longer than the run itself."""
    return min(total, max(min_steps, math.ceil(fraction * total)))


def lr_multiplier(step: int, total: int, warmup: int, floor: float) -> float:
    """Factor on the peak lr at ``step``: (step+1)/warmup during warmup, then cosine from 1 to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
