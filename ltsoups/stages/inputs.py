"""The chain of custody: what a stage builds on, every link checked against the current config first.

plan -> manifests -> members, and theta_0 -> members -> running soups -> soup -> final: each artifact
records the hashes of what it was built from and of the config that decides its bits. `verified_chain`
walks every link before the ones a stage reads and refuses a stale one (built from another config, or
from other inputs than those on disk now), naming it and the command that rebuilds it, before anything
is computed or written.

Only the checkpoints a stage loads are hashed (`open_checkpoint` reads them whole), now or, with
``hash_on_read``, by the stage as it reads them (the merge: `Chain.recorded_sha256`); the links before
them are checked by their sidecars, so checking the chain reads no weights the stage would not read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ltsoups.checkpoint import (
    SIDECAR_VERSION,
    Checkpoint,
    CheckpointError,
    Sidecar,
    open_checkpoint,
    read_sidecar,
    sidecar_path,
)
from ltsoups.config import LtSoupsConfig
from ltsoups.contracts import FactorGroup
from ltsoups.plan import Plan, PlanError
from ltsoups.provenance import hash_json
from ltsoups.stages.sections import (
    head_config_sha256,
    legacy_member_config_sha256,
    member_config_sha256,
    merge_config_sha256,
    theta0_config_sha256,
)
from ltsoups.training.batches import derive_seed
from ltsoups.workspace import Workspace


class Link(Enum):
    """An artifact of the chain (the running soups are one link: every prefix but the last)."""

    PLAN = "plan"
    THETA0 = "theta0"
    MEMBERS = "members"
    RUNNING = "running soups"
    SOUP = "soup"
    FINAL = "final"


_BEFORE = {
    Link.PLAN: (),
    Link.THETA0: (),
    Link.MEMBERS: (Link.PLAN, Link.THETA0),
    Link.RUNNING: (Link.MEMBERS,),
    Link.SOUP: (Link.MEMBERS,),
    Link.FINAL: (Link.SOUP,),
}


_PREPARE, _THETA0, _MERGE, _HEAD = "ltsoups prepare", "ltsoups theta0", "ltsoups merge", "ltsoups retrain-head"
"""The commands that rebuild each link"""


class StaleInput(CheckpointError):
    """An input made from another config, or from other inputs than the ones on disk now."""


def _stale(path: Path, problem: str, command: str) -> StaleInput:
    return StaleInput(f"{path}: {problem}; rebuild it with `{command}` (same --params/--set as this command)")


@dataclass(frozen=True)
class MemberInputs:
    """What a member must have been trained from to be current."""

    manifest_sha256: str
    theta0_sha256: str
    seed: int
    """the member's own training seed: a function of (run seed, factor, replica)"""
    config_sha256: str
    legacy_config_sha256: str
    """what a member of sidecar version 1 recorded for the same config"""

    @classmethod
    def of(
        cls, config: LtSoupsConfig, manifest_sha256: str, theta0_sha256: str, factor: int, replica: int
    ) -> MemberInputs:
        return cls(
            manifest_sha256,
            theta0_sha256,
            derive_seed(config.seed, factor, replica),
            member_config_sha256(config),
            legacy_member_config_sha256(config),
        )

    @property
    def key(self) -> str:
        """The member's content address: a comparison's store files the member trained from these inputs under it."""
        return hash_json(
            {
                "manifest": self.manifest_sha256,
                "theta0": self.theta0_sha256,
                "seed": self.seed,
                "config": self.config_sha256,
            }
        )

    def trained_at(self, path: Path) -> bool:
        """Whether ``path`` holds an intact member trained from these inputs (the one answer to "already trained?")."""
        if not sidecar_path(path).is_file():
            return False
        try:
            checkpoint = open_checkpoint(path, expect_kind="member")
        except CheckpointError:  # damaged or foreign: train it again
            return False
        return self.problem(checkpoint.sidecar) is None

    def problem(self, sidecar: Sidecar) -> str | None:
        """Why a member whose sidecar is ``sidecar`` was not trained from these inputs; None if it was."""
        if sidecar.manifest_sha256 != self.manifest_sha256:
            return f"trained from manifest {_short(sidecar.manifest_sha256)}, not {_short(self.manifest_sha256)}"
        if sidecar.theta0_sha256 != self.theta0_sha256:
            return f"trained from theta_0 {_short(sidecar.theta0_sha256)}, the current is {_short(self.theta0_sha256)}"
        if sidecar.seed != self.seed:
            return f"trained with seed {sidecar.seed}, but the config's seed gives {self.seed}"
        config = self.config_sha256 if sidecar.sidecar_version >= SIDECAR_VERSION else self.legacy_config_sha256
        if sidecar.config_sha256 != config:
            return (
                "trained with another data/backbone/head/train config "
                "(with best-val selection: or other evaluation settings)"
            )
        return None


def _short(sha256: str | None) -> str:
    return f"{sha256[:12]}..." if sha256 else "(none recorded)"


@dataclass(frozen=True)
class Chain:
    """The verified links a stage asked for (None or empty: not asked for).

    Checkpoints of the links the stage loads were hashed (with ``hash_on_read``: are hashed by the stage as it
    reads them); the others' are their paths and sidecars.
    """

    plan: Plan | None = None
    theta0: Checkpoint | None = None
    member_checkpoints: dict[str, tuple[int, Checkpoint]] = field(default_factory=dict)
    """member id -> its factor and checkpoint, in plan order"""
    running: dict[int, Checkpoint] = field(default_factory=dict)
    """the running soup after each factor but the last"""
    soup: Checkpoint | None = None
    final: Checkpoint | None = None

    @property
    def members(self) -> list[FactorGroup]:
        """The member checkpoints grouped by factor, factors ascending (the order merges fold them in)."""
        groups: dict[int, list[Path]] = {}
        for factor, checkpoint in self.member_checkpoints.values():
            groups.setdefault(factor, []).append(checkpoint.path)
        return [FactorGroup(factor, tuple(paths)) for factor, paths in sorted(groups.items())]

    def members_sha256(self, upto_factor: int | None) -> dict[str, str]:
        """What a soup of the factors up to ``upto_factor`` (None: no member) records of its members."""
        return {
            member: checkpoint.sidecar.weights_sha256
            for member, (factor, checkpoint) in self.member_checkpoints.items()
            if upto_factor is not None and factor <= upto_factor
        }

    def recorded_sha256(self) -> dict[Path, str]:
        """The weights' sha256 that the sidecars of theta_0 and the members record, for a stage that hashes them
        as it reads them (`verified_chain` with ``hash_on_read``) and checks them before its output counts."""
        checkpoints = [checkpoint for _, checkpoint in self.member_checkpoints.values()]
        if self.theta0 is not None:
            checkpoints.insert(0, self.theta0)
        return {checkpoint.path: checkpoint.sidecar.weights_sha256 for checkpoint in checkpoints}

    def soup_record(self, upto_factor: int | None) -> dict[str, Any]:
        """What the soup of the factors up to ``upto_factor`` records of its members (`_check_merge` reads it)."""
        return {"upto_factor": upto_factor, "members_sha256": self.members_sha256(upto_factor)}


def verified_chain(
    config: LtSoupsConfig,
    workspace: Workspace,
    reads: Collection[Link],
    loads: Collection[Link] = (),
    hash_on_read: bool = False,
) -> Chain:
    """Check ``reads`` and every link they were built from against ``config``, in chain order.

    ``loads``: the links whose weights the stage reads; their files are hashed against their sidecars now,
    or with ``hash_on_read`` by the stage as it reads them (their format and headers are checked now).
    """
    needed: set[Link] = set()
    pending = list(reads)
    while pending:
        link = pending.pop()
        if link not in needed:
            needed.add(link)
            pending.extend(_BEFORE[link])
    walk = _Walk(config, workspace, set(loads), hash_on_read)
    for link in Link:  # chain order: each link is checked against the ones before it
        if link in needed:
            walk.check(link)
    return walk.chain()


class _Walk:
    def __init__(self, config: LtSoupsConfig, workspace: Workspace, loads: set[Link], hash_on_read: bool) -> None:
        self.config, self.workspace, self.loads, self.hash_on_read = config, workspace, loads, hash_on_read
        self.plan: Plan | None = None
        self.theta0: Checkpoint | None = None
        self.members: dict[str, tuple[int, Checkpoint]] = {}
        self.running: dict[int, Checkpoint] = {}
        self.soup: Checkpoint | None = None
        self.final: Checkpoint | None = None

    def chain(self) -> Chain:
        return Chain(self.plan, self.theta0, self.members, self.running, self.soup, self.final)

    def check(self, link: Link) -> None:
        {
            Link.PLAN: self._plan,
            Link.THETA0: self._theta0,
            Link.MEMBERS: self._members,
            Link.RUNNING: self._running,
            Link.SOUP: self._soup,
            Link.FINAL: self._final,
        }[link]()

    def _read(self, link: Link, path: Path, kind: str, command: str) -> Checkpoint:
        try:
            if link in self.loads:
                return open_checkpoint(path, expect_kind=kind, hash_now=not self.hash_on_read)
            sidecar = read_sidecar(path)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; `{command}` rebuilds it") from err
        if sidecar.kind != kind:
            raise _stale(path, f"expected a {kind!r} checkpoint, its sidecar says {sidecar.kind!r}", command)
        return Checkpoint(path, sidecar)

    def _plan(self) -> None:
        path, config = self.workspace.plan, self.config
        try:
            plan = Plan.read(path)
        except PlanError as err:
            raise PlanError(f"{err}; `ltsoups prepare` rebuilds it") from err
        sampler = config.plan.sampler.model_dump(mode="json", by_alias=True)
        if plan.sampler != sampler:
            raise _stale(path, f"drawn by sampler {plan.sampler}, but the config says {sampler}", _PREPARE)
        if plan.seed != config.seed:
            raise _stale(path, f"drawn with seed {plan.seed}, but the config's seed is {config.seed}", _PREPARE)
        self.plan = plan

    def _theta0(self) -> None:
        theta0 = self._read(Link.THETA0, self.workspace.theta0, "theta0", _THETA0)
        if theta0.sidecar.config_sha256 != theta0_config_sha256(self.config):
            raise _stale(theta0.path, "built from another data/backbone/head config", _THETA0)
        self.theta0 = theta0

    def _members(self) -> None:
        assert self.plan is not None and self.theta0 is not None
        theta0_sha256 = self.theta0.sidecar.weights_sha256
        for entry in self.plan.members:
            command = f"ltsoups train-member {entry.member}"
            checkpoint = self._read(Link.MEMBERS, self.workspace.member(entry.member), "member", command)
            expected = MemberInputs.of(self.config, entry.manifest_sha256, theta0_sha256, entry.factor, entry.replica)
            problem = expected.problem(checkpoint.sidecar)
            if problem is not None:
                raise _stale(checkpoint.path, problem, command)
            self.members[entry.member] = (entry.factor, checkpoint)

    def _running(self) -> None:
        assert self.plan is not None
        for factor in [row.factor for row in self.plan.factors][:-1]:
            soup = self._read(Link.RUNNING, self.workspace.running_soup(factor), "soup", _MERGE)
            if soup.sidecar.upto_factor != factor:
                raise _stale(soup.path, f"merges the factors up to {soup.sidecar.upto_factor}, not {factor}", _MERGE)
            self._check_merge(soup)
            self.running[factor] = soup

    def _soup(self) -> None:
        soup = self._read(Link.SOUP, self.workspace.soup, "soup", _MERGE)
        self._check_merge(soup)
        assert self.plan is not None
        factors = [row.factor for row in self.plan.factors]
        if not self.config.merge.search.enabled and soup.sidecar.upto_factor != (factors[-1] if factors else None):
            raise _stale(soup.path, f"merges the factors up to {soup.sidecar.upto_factor} only", _MERGE)
        self.soup = soup

    def _check_merge(self, soup: Checkpoint) -> None:
        """A soup's config, theta_0 and members are the current ones (a soup records all three)."""
        assert self.theta0 is not None
        sidecar, config = soup.sidecar, self.config
        if sidecar.sidecar_version < SIDECAR_VERSION:
            raise _stale(soup.path, "written by an ltsoups that did not record its members' hashes", _MERGE)
        if sidecar.config_sha256 != merge_config_sha256(config):
            searched, searching = sidecar.search is not None, config.merge.search.enabled
            hint = ""
            if searched and not searching:
                hint = " (it was chosen by `merge --search`: set merge.search.enabled: true, as its merge did)"
            elif searching and not searched:
                hint = " (merge.search.enabled is true, but it was merged without a search)"
            raise _stale(soup.path, f"merged with another config (seed, members, plan or merger){hint}", _MERGE)
        if sidecar.theta0_sha256 != self.theta0.sidecar.weights_sha256:
            raise _stale(soup.path, "merged around another theta_0 than the current one", _MERGE)
        current = self.chain().members_sha256(sidecar.upto_factor)
        merged = sidecar.members_sha256 or {}
        for member in sorted(set(current) | set(merged)):
            if member not in merged:
                raise _stale(soup.path, f"merged without member {member}", _MERGE)
            if member not in current:
                raise _stale(soup.path, f"merged member {member}, which the plan does not have", _MERGE)
            if merged[member] != current[member]:
                raise _stale(
                    soup.path,
                    f"merged member {member} with weights {_short(merged[member])}, "
                    f"but {self.workspace.member(member)} now holds {_short(current[member])} (retrained since)",
                    _MERGE,
                )

    def _final(self) -> None:
        assert self.soup is not None
        final = self._read(Link.FINAL, self.workspace.final, "final", _HEAD)
        sidecar = final.sidecar
        if sidecar.soup_sha256 != self.soup.sidecar.weights_sha256:
            raise _stale(final.path, f"made from another soup than {self.soup.path}", _HEAD)
        if sidecar.sidecar_version < SIDECAR_VERSION or sidecar.config_sha256 != head_config_sha256(self.config):
            raise _stale(final.path, "retrained with another config (seed, or any stage before)", _HEAD)
        self.final = final
