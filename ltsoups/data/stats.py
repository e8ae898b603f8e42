"""Class statistics of a long-tailed split: rho, eta, many/medium/few groups and head/tail classes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from pydantic import Field, model_validator

from ltsoups.schema import SettingsModel


class ShotGroup(str, Enum):
    MANY = "many"
    MEDIUM = "medium"
    FEW = "few"


class Side(str, Enum):
    """The paper's Table 1 split: head classes have more than ``ShotThresholds.head`` training samples."""

    HEAD = "head"
    TAIL = "tail"


class ShotThresholds(SettingsModel):
    """many: n > many; few: n < few; medium: the rest (the LT literature's 100 and 20)."""

    many: int = Field(100, ge=1, description="classes with more training samples than this are many-shot")
    few: int = Field(20, ge=1, description="classes with fewer training samples than this are few-shot")
    head: int = Field(100, ge=1, description="head classes have more samples than this (for eta = H/T)")

    @model_validator(mode="after")
    def _ordered(self) -> ShotThresholds:
        if self.few > self.many:
            raise ValueError(f"few ({self.few}) must not exceed many ({self.many})")
        return self


@dataclass(frozen=True)
class ClassStats:
    counts: np.ndarray
    thresholds: ShotThresholds

    @property
    def rho(self) -> float:
        return float(self.counts.max() / self.counts.min())

    @property
    def head_classes(self) -> int:
        return int((self.counts > self.thresholds.head).sum())

    @property
    def tail_classes(self) -> int:
        return len(self.counts) - self.head_classes

    @property
    def eta(self) -> float:
        """H / T; infinite when every class is a head class."""
        return self.head_classes / self.tail_classes if self.tail_classes else float("inf")

    def groups(self) -> list[ShotGroup]:
        """The shot group of every class, in label order."""
        return [self.group_of(int(n)) for n in self.counts]

    def group_of(self, count: int) -> ShotGroup:
        if count > self.thresholds.many:
            return ShotGroup.MANY
        return ShotGroup.FEW if count < self.thresholds.few else ShotGroup.MEDIUM

    def sides(self) -> list[Side]:
        """Head or tail, for every class in label order."""
        return [Side.HEAD if n > self.thresholds.head else Side.TAIL for n in self.counts]

    def class_groups(self) -> list[tuple[str, ...]]:
        """Every group each class belongs to (its shot group, then head or tail), in label order."""
        return [(group.value, side.value) for group, side in zip(self.groups(), self.sides(), strict=True)]

    def group_sizes(self) -> dict[ShotGroup, int]:
        groups = self.groups()
        return {g: groups.count(g) for g in ShotGroup}
