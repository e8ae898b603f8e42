"""Each training's length and warmup, computed from its sample count alone (no torch, no images).

`ltsoups plan` and `validate` show them per factor and warn where warmup takes over a member: with
the paper's max(100, 1%) warmup and the 100-step minimum, small subsets can end before warmup does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ltsoups.plan import factor_label
from ltsoups.settings import LoopSettings
from ltsoups.training.schedule import steps_for, warmup_steps

WARMUP_WARNING_SHARE = 0.5


@dataclass(frozen=True)
class StepBudget:
    """One training: what it runs on, its optimizer steps and how many of them warm up."""

    name: str
    samples: int
    steps: int
    warmup: int

    @classmethod
    def of(cls, name: str, samples: int, settings: LoopSettings) -> StepBudget:
        schedule = settings.schedule
        steps = steps_for(samples, settings.optim.batch_size, schedule)
        return cls(name, samples, steps, warmup_steps(steps, schedule.warmup_min_steps, schedule.warmup_fraction))

    @property
    def warmup_share(self) -> float:
        """Percent of the steps spent warming up."""
        return 100.0 * self.warmup / self.steps

    def warning(self, section: str) -> str | None:
        """A sentence when warmup covers more than half of the training, else None."""
        if self.warmup <= WARMUP_WARNING_SHARE * self.steps:
            return None
        ending = (
            "the learning rate peaks on the last step and never decays"
            if self.warmup == self.steps
            else f"only {self.steps - self.warmup} steps decay"
        )
        return (
            f"{self.name}: warmup takes {self.warmup} of its {self.steps} steps ({self.warmup_share:.0f}%); {ending}. "
            f"Warmup is max({section}.schedule.warmup_min_steps, warmup_fraction x steps); the authors' code "
            f"warms up 20 steps ({section}.schedule.warmup_min_steps=20)"
        )


def factor_name(factor: int) -> str:
    return f"factor {factor_label(factor)}"


def pipeline_budgets(
    factor_sizes: Sequence[tuple[int, int]], total: int, train: LoopSettings, head: LoopSettings | None
) -> tuple[list[StepBudget], StepBudget | None]:
    """Per factor (factor, subset size) one member's budget; and CR's on all ``total`` samples (None: no CR)."""
    members = [StepBudget.of(f"{factor_name(factor)} members", size, train) for factor, size in factor_sizes]
    return members, None if head is None else StepBudget.of("CR (all data)", total, head)
