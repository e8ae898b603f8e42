"""Built-in linear and selecting mergers: uniform soups, LT-Soups' recursive interpolation, task arithmetic
and greedy soups. TIES and DARE are in ``ltsoups.plugins.task_vectors``.

torch is imported inside methods: naming and validating a merger must not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from ltsoups.contracts import (
    FactorGroup,
    FactorTensors,
    LinearMerger,
    PerTensorMerger,
    PluginParams,
    SearchableMerger,
    SelectingMerger,
    Selection,
    SoupScorer,
    ValidationMetric,
    Weights,
)
from ltsoups.plugin_specs import MergerSpec, registry_from
from ltsoups.registry import PluginKind, installed_registry

if TYPE_CHECKING:
    import torch


class UniformParams(PluginParams):
    include_theta0: bool = Field(False, description="count the zero-shot weights as one more soup ingredient")


class UniformMerger(LinearMerger):
    """Every member gets the same weight (the conventional model soup)."""

    Params = UniformParams
    description = "uniform average of all members"
    params: UniformParams

    def coefficients(self, theta0: Path, groups: Sequence[FactorGroup]) -> Weights:
        paths = [member for group in groups for member in group.members]
        if self.params.include_theta0:
            paths.insert(0, theta0)
        return [(path, 1.0 / len(paths)) for path in paths]


# ------------------------------------------------------------------------------------------- recursive


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
    within: MergerSpec | None = Field(
        None,
        description="the within-factor step: how a factor's replicas (with theta_0 as base) become mean_k; "
        "null: their uniform mean (the paper); or a merger, e.g. {name: ties, params: {density: 0.2}}",
    )

    @field_validator("within")
    @classmethod
    def _a_per_tensor_step(cls, within: MergerSpec | None, info: ValidationInfo) -> MergerSpec | None:
        if within is not None:
            merger = registry_from(info).entry(PluginKind.MERGER, within.name).load()
            if not issubclass(merger, PerTensorMerger):
                raise ValueError(
                    f"merger {within.name!r} chooses on the validation split and cannot be a within-factor step; "
                    "use a linear or per-tensor merger"
                )
        return within


class RecursiveMerger(SearchableMerger):
    """LT-Soups merge: each factor's replicas merged (uniform mean by default), factors folded in ascending order.

    Theta_0 = theta_0 (zero-shot), Theta_k = lambda * Theta_(k-1) + (1 - lambda) * mean_k, where mean_k
    is the within-factor step applied to the replicas of the k-th smallest factor.

    With the uniform mean (or any linear within-factor step) the whole merge is a weighted sum of the
    checkpoints, streamed as one (``as_weighted_sum``). With a per-tensor step (TIES, DARE, ...) it is
    computed tensor by tensor as the recursion itself: each Theta_k from Theta_(k-1) as stored (in the
    checkpoints' dtype, as the authors' code holds it) and mean_k, in float64.
    """

    Params = RecursiveParams
    description = "recursive interpolation from theta_0 in ascending factor order (paper Eq. 5)"
    params: RecursiveParams

    @property
    def keep_previous(self) -> float:
        """The weight on Theta_(k-1) in the paper's convention."""
        lam = self.params.lam
        return lam if self.params.weights is LambdaSide.PREVIOUS else 1.0 - lam

    def with_lambda(self, lam: float) -> RecursiveMerger:
        """The same merge with another lambda (same side, same within-factor step)."""
        return RecursiveMerger(self.params.model_copy(update={"lam": lam}))

    @cached_property
    def within(self) -> PerTensorMerger | None:
        spec = self.params.within
        return None if spec is None else installed_registry().instantiate(spec)

    def as_weighted_sum(self, theta0: Path, groups: Sequence[FactorGroup]) -> Weights | None:
        keep = self.keep_previous
        weights: Weights = [(theta0, 1.0)]
        for group in sorted(groups, key=lambda g: g.factor):
            step = self._factor_weights(theta0, group, 1.0 - keep)
            if step is None:
                return None
            weights = [(path, w * keep) for path, w in weights]
            for path, w in step:
                if path == theta0:  # a within step may weigh theta_0 too: it keeps one weight, first
                    weights[0] = (theta0, weights[0][1] + w)
                else:
                    weights.append((path, w))
        return weights

    def _factor_weights(self, theta0: Path, group: FactorGroup, share: float) -> Weights | None:
        """``share`` times mean_k as weights on checkpoints; None when the within step is not linear."""
        if self.within is None:
            each = share / len(group.members)
            return [(member, each) for member in group.members]
        step = self.within.as_weighted_sum(theta0, [group])
        return None if step is None else [(path, share * w) for path, w in step]

    def factor_tensor(self, name: str, base: torch.Tensor, group: FactorTensors) -> torch.Tensor:
        """mean_k, one tensor of it: the within-factor step on one factor's replicas, in float64."""
        import torch

        if self.within is not None:
            return self.within.merge_tensor(name, base, [group]).to(torch.float64)
        total = torch.zeros(base.shape, dtype=torch.float64)
        for member in group.members:
            total.add_(member)
        return total.div_(len(group.members))

    def fold(self, previous: torch.Tensor, factor: torch.Tensor, stored: torch.dtype) -> torch.Tensor:
        """Theta_k from Theta_(k-1) as stored (in dtype ``stored``) and mean_k, in float64."""
        import torch

        keep = self.keep_previous
        as_stored = previous.to(stored).to(torch.float64, copy=True)  # a copy: previous may be theta_0's input
        return as_stored.mul_(keep).add_(factor, alpha=1.0 - keep)

    def merge_prefixes(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> list[torch.Tensor]:
        running, soup = [], base
        for group in sorted(groups, key=lambda g: g.factor):
            soup = self.fold(soup, self.factor_tensor(name, base, group), base.dtype)
            running.append(soup)
        return running

    def merge_tensor(self, name: str, base: torch.Tensor, groups: Sequence[FactorTensors]) -> torch.Tensor:
        import torch

        return self.merge_prefixes(name, base, groups)[-1] if groups else base.to(torch.float64)


# -------------------------------------------------------------------------------------- task arithmetic


class TaskVectorSum(str, Enum):
    MEAN = "mean"
    SUM = "sum"

    def weight(self, count: int) -> float:
        """w_k of each of ``count`` task vectors."""
        return 1.0 / count if self is TaskVectorSum.MEAN else 1.0


class TaskArithmeticParams(PluginParams):
    scale: float = Field(
        1.0, description="s in theta_0 + s * sum_k w_k (theta_k - theta_0); Ilharco et al. choose it on validation"
    )
    combine: TaskVectorSum = Field(
        TaskVectorSum.MEAN,
        description="w_k: 'mean' (1/K: with scale 1 the uniform soup) or 'sum' (1: Ilharco et al.'s task addition)",
    )


class TaskArithmeticMerger(LinearMerger):
    """Task arithmetic (Ilharco et al., ICLR 2023, "Editing models with task arithmetic"):
    theta_0 + s * sum_k w_k (theta_k - theta_0), over every member (or a factor's replicas, as a within step).

    A weighted sum of checkpoints: theta_0 weighs 1 - s * sum_k w_k and member k weighs s * w_k.
    """

    Params = TaskArithmeticParams
    description = "task arithmetic: theta_0 + s * sum_k w_k (theta_k - theta_0) (Ilharco et al. 2023)"
    params: TaskArithmeticParams

    def coefficients(self, theta0: Path, groups: Sequence[FactorGroup]) -> Weights:
        members = [member for group in groups for member in group.members]
        share = self.params.scale * self.params.combine.weight(len(members))
        return [(theta0, 1.0 - share * len(members)), *((member, share) for member in members)]


# ---------------------------------------------------------------------------------------- greedy soup


class GreedySoupParams(PluginParams):
    metric: ValidationMetric = Field(
        ValidationMetric.BALANCED,
        description="the validation accuracy that orders the members and decides what is kept "
        "(balanced, few or overall; Wortsman et al. use overall accuracy, long-tailed work balanced)",
    )


class GreedySoupMerger(SelectingMerger):
    """Greedy soup (Wortsman et al., ICML 2022, "Model soups", Recipe 1): members ordered by validation score,
    best first; each is added to the uniform soup and kept only if the soup's validation score strictly
    improves (the released code's ``>``). Factors play no part; theta_0 is not an ingredient.
    """

    Params = GreedySoupParams
    description = "greedy soup: add members best-first, keep those that raise the val score (Wortsman et al.)"
    params: GreedySoupParams

    def select(self, theta0: Path, groups: Sequence[FactorGroup], scorer: SoupScorer) -> Selection:
        metric = self.params.metric
        members = [(group.factor, member) for group in groups for member in group.members]
        alone = {member: scorer.score([(member, 1.0)], metric) for _, member in members}
        ranked = sorted(members, key=lambda item: -alone[item[1]])  # stable: ties keep plan order
        kept = [ranked[0][1]]
        best = alone[kept[0]]
        tried: list[dict[str, Any]] = []
        for _, candidate in ranked[1:]:
            score = scorer.score(_uniform([*kept, candidate]), metric)
            tried.append({"member": str(candidate), "soup_score": score, "kept": score > best})
            if score > best:
                kept, best = [*kept, candidate], score
        record = {
            "method": "greedy soup",
            "metric": metric.value,
            "ranked": [{"member": str(m), "factor": f, "score": alone[m]} for f, m in ranked],
            "tried": tried,
            "kept": [str(member) for member in kept],
            "val_score": best,
        }
        return Selection(_uniform(kept), record)


def _uniform(paths: Sequence[Path]) -> Weights:
    return [(path, 1.0 / len(paths)) for path in paths]
