"""The subsample plan: which members to train, and each member's manifest of sample indices.

Both are typed artifacts: written once by the prepare stage, read (and checked) by the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, ValidationError

from ltsoups.contracts import Sampler, SubsetDraw
from ltsoups.io.atomic import write_text_atomic
from ltsoups.provenance import canonical_json, code_version, hash_json
from ltsoups.schema import StrictModel
from ltsoups.workspace import Workspace

MANIFEST_SCHEMA = 1


def factor_label(factor: int) -> str:
    """``2^k`` for a power of two (the progressive sampler's factors), else the factor itself (fixed-ratio)."""
    if factor > 0 and factor & (factor - 1) == 0:
        return f"2^{factor.bit_length() - 1}"
    return str(factor)


class PlanError(ValueError):
    """A plan or manifest file is unreadable, edited, or does not fit the data it claims to index."""


def member_id(factor: int, replica: int) -> str:
    return f"f{factor}-r{replica}"


def _parse(model: type[StrictModel], path: Path, what: str) -> Any:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PlanError(f"{path}: cannot read {what} ({err})") from err
    try:
        return raw, model.model_validate(raw)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "top level"
        raise PlanError(f"{path}: not a {what} ({where}: {problem['msg']})") from err


class DatasetFingerprint(StrictModel):
    """Which training split a plan was drawn from: its name, size and a hash of its labels."""

    name: str
    size: int
    labels_sha256: str

    @classmethod
    def of(cls, name: str, labels: np.ndarray) -> DatasetFingerprint:
        return cls(name=name, size=len(labels), labels_sha256=hash_json(np.asarray(labels).tolist()))


class FactorSummary(StrictModel):
    """One row of the plan table: a factor and what its subsets hold."""

    factor: int
    cap: int | None
    size: int
    share: float
    rho: float
    members: int


def summarise(draws: Sequence[SubsetDraw], class_counts: np.ndarray) -> list[FactorSummary]:
    """Per factor: cap, subset size, percent of the training data (2 decimals), imbalance ratio."""
    total = int(class_counts.sum())
    rows = []
    for factor in sorted({d.factor for d in draws}):
        group = [d for d in draws if d.factor == factor]
        first = group[0]
        counts = np.array(first.class_counts)
        rows.append(
            FactorSummary(
                factor=factor,
                cap=first.cap,
                size=first.size,
                share=round(100.0 * first.size / total, 2),
                rho=round(float(counts.max() / counts.min()), 4),
                members=len(group),
            )
        )
    return rows


class Manifest(StrictModel):
    """One member's subset: dataset indices, plus what produced them and a hash of its own content."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True)

    schema_version: int = Field(MANIFEST_SCHEMA, alias="schema")
    member: str
    factor: int
    replica: int
    seed: int
    cap: int | None
    size: int
    class_counts: tuple[int, ...]
    # Only the sampler's name: its params (rounds, replicas) decide which members exist, not what a
    # member's subset holds; raising N must leave the other members' manifests byte-identical.
    sampler: str
    dataset: DatasetFingerprint
    indices: tuple[int, ...]
    content_sha256: str

    @classmethod
    def of(cls, draw: SubsetDraw, labels: np.ndarray, sampler: str, dataset: DatasetFingerprint) -> Manifest:
        per_class = [np.flatnonzero(labels == c) for c in range(len(draw.positions))]
        indices = np.sort(np.concatenate([per_class[c][pos] for c, pos in enumerate(draw.positions)]))
        body = {
            "schema": MANIFEST_SCHEMA,
            "member": member_id(draw.factor, draw.replica),
            "factor": draw.factor,
            "replica": draw.replica,
            "seed": draw.seed,
            "cap": draw.cap,
            "size": draw.size,
            "class_counts": draw.class_counts,
            "sampler": sampler,
            "dataset": dataset.model_dump(mode="json"),
            "indices": indices.tolist(),
        }
        return cls.model_validate({**body, "content_sha256": hash_json(body)})

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at ``path``, checked against its own content hash."""
        raw, manifest = _parse(cls, path, "manifest")
        body = {key: value for key, value in raw.items() if key != "content_sha256"}
        if raw.get("content_sha256") != hash_json(body):
            raise PlanError(f"{path}: manifest content does not match its content_sha256 (edited or truncated)")
        return manifest

    def write(self, path: Path) -> None:
        """Canonical bytes: identical manifests give identical files."""
        write_text_atomic(path, canonical_json(self.model_dump(mode="json", by_alias=True)) + "\n")

    def samples(self, labels: np.ndarray, path: Path) -> np.ndarray:
        """The sample indices, checked against the training labels they claim to be drawn from."""
        indices = np.asarray(self.indices, dtype=np.int64)
        outside = indices[(indices < 0) | (indices >= len(labels))]
        if len(outside):
            raise PlanError(
                f"{path}: sample index {int(outside[0])} does not exist: "
                f"the training split has {len(labels)} samples (indices 0..{len(labels) - 1})"
            )
        values, times = np.unique(indices, return_counts=True)
        if (times > 1).any():
            raise PlanError(f"{path}: sample index {int(values[times > 1][0])} is listed twice")
        counts = tuple(np.bincount(labels[indices], minlength=len(self.class_counts)).tolist())
        if counts != self.class_counts:
            raise PlanError(
                f"{path}: its samples have class counts {list(counts)}, but the manifest says {list(self.class_counts)}"
            )
        return indices


class PlannedMember(StrictModel):
    """A member of the plan, as the plan index lists it."""

    member: str
    factor: int
    replica: int
    size: int
    manifest_sha256: str


class Plan(StrictModel):
    """The plan index: every member with its manifest's hash, and the factors' summary."""

    seed: int
    sampler: dict[str, Any]
    dataset: DatasetFingerprint
    class_counts: tuple[int, ...]
    factors: tuple[FactorSummary, ...]
    members: tuple[PlannedMember, ...]
    code_version: str
    content_sha256: str | None = None
    """of every other field: a plan edited by hand (a member deleted) is refused; None until written"""

    @classmethod
    def read(cls, path: Path) -> Plan:
        """The plan at ``path``, checked against its own content hash."""
        raw, plan = _parse(cls, path, "plan")
        body = {key: value for key, value in raw.items() if key != "content_sha256"}
        if raw.get("content_sha256") != hash_json(body):
            raise PlanError(
                f"{path}: plan content does not match its content_sha256 (edited, or written before plans had one)"
            )
        return plan

    def sealed(self) -> Plan:
        """This plan with the hash of its content."""
        return self.model_copy(
            update={"content_sha256": hash_json(self.model_dump(mode="json", exclude={"content_sha256"}))}
        )

    def write(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.sealed().model_dump(mode="json"), indent=2) + "\n")

    def member(self, member: str, path: Path) -> PlannedMember:
        """The plan's entry for ``member``; the error names the plan file and lists its members."""
        for entry in self.members:
            if entry.member == member:
                return entry
        listed = ", ".join(entry.member for entry in self.members)
        raise PlanError(f"member {member!r} is not in the plan {path}; members: {listed}")

    def factor_groups(self) -> list[tuple[int, list[PlannedMember]]]:
        """The members grouped by factor, factors ascending (the order merges fold them in)."""
        groups: dict[int, list[PlannedMember]] = {}
        for entry in self.members:
            groups.setdefault(entry.factor, []).append(entry)
        return sorted(groups.items())


@dataclass(frozen=True)
class PlanFiles:
    """What the prepare stage wrote: the plan, its file, and each member's manifest file."""

    plan: Plan
    path: Path
    manifests: dict[str, Path]


def write_plan(
    workspace: Workspace,
    sampler: Sampler,
    sampler_spec: dict[str, Any],
    labels: np.ndarray,
    num_classes: int,
    dataset_name: str,
    seed: int,
) -> PlanFiles:
    """Write every member's manifest and the plan index (members, factors, hashes) where ``workspace`` keeps them."""
    counts = np.bincount(labels, minlength=num_classes)
    draws = sampler.draws(counts, seed)
    fingerprint = DatasetFingerprint.of(dataset_name, labels)
    manifests: dict[str, Path] = {}
    members = []
    for draw in draws:
        manifest = Manifest.of(draw, labels, sampler_spec["name"], fingerprint)
        path = workspace.manifest(manifest.member)
        manifest.write(path)
        manifests[manifest.member] = path
        members.append(
            PlannedMember(
                member=manifest.member,
                factor=draw.factor,
                replica=draw.replica,
                size=draw.size,
                manifest_sha256=manifest.content_sha256,
            )
        )
    plan = Plan(
        seed=seed,
        sampler=sampler_spec,
        dataset=fingerprint,
        class_counts=tuple(counts.tolist()),
        factors=tuple(summarise(draws, counts)),
        members=tuple(members),
        code_version=code_version(),
    ).sealed()
    plan.write(workspace.plan)
    return PlanFiles(plan, workspace.plan, manifests)
