"""What a comparison writes: its spec (methods, seeds, data) and one result per method and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltsoups.io.atomic import write_json_atomic
from ltsoups.merge_search import SearchCost
from ltsoups.schema import StrictModel
from ltsoups.training.cost import TrainingCost
from ltsoups.workspace import ComparisonWorkspace


class MethodEntry(StrictModel):
    name: str
    description: str
    settings: tuple[str, ...]
    ensemble_of: str | None = None


class ComparisonSpec(StrictModel):
    """``comparison.json``: what was compared, on which data, by which code, and what it cost overall."""

    methods: tuple[MethodEntry, ...]
    seeds: tuple[int, ...]
    reference: str
    dataset: str
    class_names: tuple[str, ...]
    train_counts: tuple[int, ...]
    class_groups: tuple[str, ...]
    """shot group (many / medium / few) of every class, from its training count"""
    base_config: dict[str, Any]
    """the user's params and --set overrides, validated (before any method's settings)"""
    code_version: str
    members_trained: int
    """distinct members trained by this invocation (a store entry from an earlier one is not retrained)"""
    members_used: int
    """members the runs use, counting a shared member once per run"""
    seconds: float

    @classmethod
    def read(cls, root: Path) -> ComparisonSpec:
        path = ComparisonWorkspace(root).spec
        if not path.is_file():
            raise FileNotFoundError(f"no comparison at {root} (no {path.name}): run `ltsoups compare` first")
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.model_dump(mode="json"))


class MethodResult(StrictModel):
    """``runs/<method>/seed-<s>/result.json``: the model a method's run produced and where its logits are."""

    method: str
    seed: int
    model: str
    """which evaluated model stands for the method (e.g. 'stage 1 + CR')"""
    predictions: dict[str, str]
    """split -> saved logits, relative to the comparison folder"""
    weights_sha256: str | None
    """None for an ensemble (no single model)"""
    scores: dict[str, float]
    calibration: dict[str, float]
    weight_change: dict[str, float] | None
    cost: TrainingCost
    """every training the method needs (its members, shared or not, and CR), as if run alone"""
    search_cost: SearchCost | None = None
    """what choosing the merge on validation cost (``merge.search``; the merge output's ``search.cost``), or None"""
    members: int
    models_at_inference: int
    config_sha256: str
    code_version: str

    @classmethod
    def read(cls, path: Path) -> MethodResult:
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.model_dump(mode="json"))
