"""The subsample plan: which members to train, and each member's manifest of sample indices."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltsoups.contracts import Sampler, SubsetDraw
from ltsoups.io.atomic import write_text_atomic
from ltsoups.provenance import canonical_json, code_version, hash_json

MANIFEST_SCHEMA = 1


def member_id(factor: int, replica: int) -> str:
    return f"f{factor}-r{replica}"


@dataclass(frozen=True)
class FactorSummary:
    """One row of the plan table: a factor and what its subsets hold."""

    factor: int
    cap: int | None
    size: int
    share: float
    rho: float
    members: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "cap": self.cap,
            "size": self.size,
            "share": self.share,
            "rho": self.rho,
            "members": self.members,
        }


def summarise(draws: list[SubsetDraw], class_counts: np.ndarray) -> list[FactorSummary]:
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


def build_manifest(draw: SubsetDraw, labels: np.ndarray, sampler: dict[str, Any], dataset: dict[str, Any]) -> dict:
    """The manifest of one member: dataset indices of its subset plus what produced them."""
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
        # Only the name: the sampler's params (rounds, replicas) decide which members exist, not what a
        # member's subset holds; raising N must leave the other members' manifests byte-identical.
        "sampler": sampler["name"],
        "dataset": dataset,
        "indices": indices.tolist(),
    }
    return {**body, "content_sha256": hash_json(body)}


def manifest_text(manifest: dict) -> str:
    """Canonical bytes of a manifest: identical inputs give identical files."""
    return canonical_json(manifest) + "\n"


def dataset_fingerprint(name: str, labels: np.ndarray) -> dict[str, Any]:
    return {"name": name, "size": len(labels), "labels_sha256": hash_json(labels.tolist())}


@dataclass(frozen=True)
class PlanFiles:
    plan: Path
    manifests: dict[str, Path]


def write_plan(
    out_dir: Path,
    sampler: Sampler,
    sampler_spec: dict[str, Any],
    labels: np.ndarray,
    num_classes: int,
    dataset_name: str,
    seed: int,
) -> PlanFiles:
    """Write every member's manifest and the plan index (members, factors, hashes) under ``out_dir``."""
    counts = np.bincount(labels, minlength=num_classes)
    draws = sampler.draws(counts, seed)
    fingerprint = dataset_fingerprint(dataset_name, labels)
    manifests: dict[str, Path] = {}
    members = []
    for draw in draws:
        manifest = build_manifest(draw, labels, sampler_spec, fingerprint)
        path = out_dir / "manifests" / f"{manifest['member']}.json"
        write_text_atomic(path, manifest_text(manifest))
        manifests[manifest["member"]] = path
        members.append(
            {
                "member": manifest["member"],
                "factor": draw.factor,
                "replica": draw.replica,
                "size": draw.size,
                "manifest_sha256": manifest["content_sha256"],
            }
        )
    plan = {
        "seed": seed,
        "sampler": sampler_spec,
        "dataset": fingerprint,
        "class_counts": counts.tolist(),
        "factors": [row.as_dict() for row in summarise(draws, counts)],
        "members": members,
        "code_version": code_version(),
    }
    plan_path = out_dir / "plan.json"
    write_text_atomic(plan_path, json.dumps(plan, indent=2) + "\n")
    return PlanFiles(plan_path, manifests)


def manifest_samples(manifest: dict, path: Path, labels: np.ndarray) -> np.ndarray:
    """The manifest's sample indices, checked against the training labels it claims to be drawn from."""
    indices = np.asarray(manifest["indices"], dtype=np.int64)
    outside = indices[(indices < 0) | (indices >= len(labels))]
    if len(outside):
        raise ValueError(
            f"{path}: sample index {int(outside[0])} does not exist: "
            f"the training split has {len(labels)} samples (indices 0..{len(labels) - 1})"
        )
    values, times = np.unique(indices, return_counts=True)
    if (times > 1).any():
        raise ValueError(f"{path}: sample index {int(values[times > 1][0])} is listed twice")
    counts = np.bincount(labels[indices], minlength=len(manifest["class_counts"])).tolist()
    if counts != manifest["class_counts"]:
        raise ValueError(
            f"{path}: its samples have class counts {counts}, but the manifest says {manifest['class_counts']}"
        )
    return indices


def read_manifest(path: Path) -> dict:
    """A manifest, checked against its own content hash."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read manifest ({err})") from err
    claimed = manifest.pop("content_sha256", None)
    if claimed != hash_json(manifest):
        raise ValueError(f"{path}: manifest content does not match its content_sha256 (edited or truncated)")
    return {**manifest, "content_sha256": claimed}
