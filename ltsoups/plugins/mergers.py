"""Built-in mergers: uniform soups and the LT-Soups recursive interpolation."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from pathlib import Path

from pydantic import ConfigDict, Field

from ltsoups.contracts import FactorGroup, Merger, PluginParams


class UniformParams(PluginParams):
    include_theta0: bool = Field(False, description="count the zero-shot weights as one more soup ingredient")


class UniformMerger(Merger):
    """Every member gets the same weight (the conventional model soup)."""

    Params = UniformParams
    description = "uniform average of all members"
    params: UniformParams

    def coefficients(self, theta0: Path, groups: Sequence[FactorGroup]) -> list[tuple[Path, float]]:
        paths = [member for group in groups for member in group.members]
        if self.params.include_theta0:
            paths.insert(0, theta0)
        return [(path, 1.0 / len(paths)) for path in paths]


class LambdaSide(str, Enum):
    PREVIOUS = "previous"
    NEW = "new"


class RecursiveParams(PluginParams):
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True)

    lam: float = Field(
        0.7,
        alias="lambda",
        ge=0.0,
        le=1.0,
        description="interpolation weight; with weights=previous: Theta_k = lambda*Theta_(k-1) + (1-lambda)*mean_k",
    )
    weights: LambdaSide = Field(
        LambdaSide.PREVIOUS,
        description="which side lambda weights: 'previous' (the paper's Eq. 5, the authors' merge.py) or "
        "'new' (the authors' trainer.py); 'new' with lambda equals 'previous' with 1 - lambda",
    )


class RecursiveMerger(Merger):
    """LT-Soups merge: replicas of a factor averaged uniformly, factors folded in ascending order.

    Theta_0 = theta_0 (zero-shot), Theta_k = lambda * Theta_(k-1) + (1 - lambda) * mean_k,
    where mean_k is the uniform average of the replicas of the k-th smallest factor.
    """

    Params = RecursiveParams
    description = "recursive interpolation from theta_0 in ascending factor order (paper Eq. 5)"
    params: RecursiveParams

    @property
    def keep_previous(self) -> float:
        """The weight on Theta_(k-1) in the paper's convention."""
        lam = self.params.lam
        return lam if self.params.weights is LambdaSide.PREVIOUS else 1.0 - lam

    def coefficients(self, theta0: Path, groups: Sequence[FactorGroup]) -> list[tuple[Path, float]]:
        keep = self.keep_previous
        weights: list[tuple[Path, float]] = [(theta0, 1.0)]
        for group in sorted(groups, key=lambda g: g.factor):
            weights = [(path, w * keep) for path, w in weights]
            share = (1.0 - keep) / len(group.members)
            weights.extend((member, share) for member in group.members)
        return weights
