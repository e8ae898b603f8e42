"""Where each stage reads and writes, relative to one working directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def counts(self) -> Path:
        return self.root / "data" / "counts.json"

    @property
    def data_fingerprint(self) -> Path:
        """The dataset's fingerprint (stage `data`): changes only when the dataset's files or params do."""
        return self.root / "data" / "fingerprint.json"

    @property
    def fingerprint_cache(self) -> Path:
        """Size, mtime and content hash of every dataset file at the last fingerprint."""
        return self.root / "data" / "fingerprint-cache.json"

    @property
    def generated_images(self) -> Path:
        """Generated images (the embedded world's) one stage process drew, kept for the next (stages/image_store.py)."""
        return self.root / "data" / "images"

    @property
    def plan(self) -> Path:
        return self.root / "plan" / "plan.json"

    def manifest(self, member: str) -> Path:
        return self.root / "plan" / "manifests" / f"{member}.json"

    @property
    def theta0(self) -> Path:
        return self.root / "theta0" / "theta0.safetensors"

    def member(self, member: str) -> Path:
        return self.root / "members" / member / "weights.safetensors"

    def member_resume(self, member: str) -> Path:
        return self.root / "members" / member / "resume.safetensors"

    @property
    def soup(self) -> Path:
        return self.root / "soup" / "soup.safetensors"

    def running_soup(self, factor: int) -> Path:
        return self.root / "soup" / "running" / f"upto-f{factor}.safetensors"

    @property
    def soup_search(self) -> Path:
        """The lambda x N grid of `merge --search`, scored on validation, and what it chose."""
        return self.root / "soup" / "search.json"

    @property
    def soup_search_plot(self) -> Path:
        return self.root / "soup" / "search.png"

    @property
    def soup_metrics(self) -> Path:
        return self.root / "soup" / "val_metrics.json"

    @property
    def final(self) -> Path:
        return self.root / "final" / "final.safetensors"

    @property
    def final_resume(self) -> Path:
        return self.root / "final" / "resume.safetensors"

    @property
    def metrics(self) -> Path:
        return self.root / "eval" / "metrics.json"

    @property
    def results(self) -> Path:
        return self.root / "eval" / "results.json"

    @property
    def per_class(self) -> Path:
        return self.root / "eval" / "per_class.json"

    @property
    def groups(self) -> Path:
        return self.root / "eval" / "groups.json"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "eval" / "predictions"

    def predictions(self, model: str, split: str) -> Path:
        """The saved logits of one evaluated model (its key: zero_shot, stage1, final, ...) on one split."""
        return self.predictions_dir / split / f"{model}.safetensors"

    @property
    def tracking_run(self) -> Path:
        return self.root / "tracking" / "parent_run.json"


@dataclass(frozen=True)
class StoreWorkspace:
    """A comparison's content-addressed store: each artifact under the key of what produced it."""

    root: Path

    def theta0(self, key: str) -> Workspace:
        """Where theta_0 of ``key`` is built (the theta0 stage writes into this workspace)."""
        return Workspace(self.root / "theta0" / key)

    def member(self, key: str) -> Path:
        """The member trained from the inputs whose ``MemberInputs.key`` is ``key``."""
        return self.root / "members" / key / "weights.safetensors"

    def member_cost(self, key: str) -> Path:
        return self.root / "members" / key / "cost.json"

    def predictions(self, key: str) -> Path:
        return self.root / "predictions" / f"{key}.safetensors"


@dataclass(frozen=True)
class ComparisonWorkspace:
    """Where `ltsoups compare` keeps a comparison: its spec, one run workspace per method and seed, the
    store they share, the report; with ``--grid``, one comparison per eta and the grid's summary."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "comparison.json"

    def run(self, method: str, seed: int) -> Workspace:
        return Workspace(self.root / "runs" / method / f"seed-{seed}")

    def result(self, method: str, seed: int) -> Path:
        return self.run(method, seed).root / "result.json"

    @property
    def store(self) -> StoreWorkspace:
        return StoreWorkspace(self.root / "store")

    @property
    def report(self) -> Path:
        return self.root / "report"

    def eta(self, eta: float) -> ComparisonWorkspace:
        """The comparison at ``eta`` of a grid."""
        return ComparisonWorkspace(self.root / f"eta-{eta:.4g}")

    def grid_comparisons(self) -> list[ComparisonWorkspace]:
        """The comparisons of the grid at this folder that wrote their spec, in folder order."""
        found = (ComparisonWorkspace(folder) for folder in sorted(self.root.glob("eta-*")))
        return [comparison for comparison in found if comparison.spec.is_file()]

    @property
    def grid_summary(self) -> Path:
        return self.root / "grid.json"

    @property
    def grid_plot(self) -> Path:
        return self.root / "grid.png"
