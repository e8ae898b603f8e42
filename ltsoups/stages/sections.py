"""Which config sections each stage's output depends on, and the hash of them its sidecar records."""

from __future__ import annotations

from ltsoups.config import HeadTraining, LtSoupsConfig
from ltsoups.provenance import hash_json
from ltsoups.settings import LoopSettings, SearchMode

THETA0_SECTIONS = ("data", "backbone", "head")
MEMBER_SECTIONS = (*THETA0_SECTIONS, "train")
MERGE_SECTIONS = (*MEMBER_SECTIONS, "plan", "merge")
HEAD_SECTIONS = (*MERGE_SECTIONS, "retrain_head")

STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "data": ("data.dataset",),
    "prepare": ("seed", "data", "plan", "members"),
    "theta0": THETA0_SECTIONS,
    "train-member": ("seed", *MEMBER_SECTIONS),
    "merge": (*MERGE_SECTIONS, "evaluation"),
    "retrain-head": ("seed", *HEAD_SECTIONS, "evaluation"),
    "evaluate": (*THETA0_SECTIONS, "evaluation"),
}
"""What each stage of dvc.yaml reads of params.yaml (its `params`, checked against this table): the sections
its config hash covers, the run seed where it draws from it, and how the scores it records are predicted."""

SAVE_ONLY = frozenset({"resume_every"})
"""Training settings that decide when a training saves its state, never what it computes: no part of a hash
(runtime, runner and tracking are sections no stage hashes)."""

ADDED_LATER: dict[str, object] = {
    "retrain_head.trains": HeadTraining.CLASS_VECTORS.value,
    "merge.search.mode": SearchMode.LAMBDA_N.value,
    "merge.search.sweeps": 1,
}
"""Settings added after hashes were recorded (dotted paths), with the value that does what was done before them:
hashed only away from it, so that adding a setting left every recorded hash, and so every finished stage, as it was."""


def _bits_sha256(config: LtSoupsConfig, sections: tuple[str, ...], seed: bool) -> str:
    """Hash of what in ``sections`` can change a stage's weights, with the run seed if the stage draws from it."""
    hashed = config.hashed_sections(*sections)
    for name in sections:
        if isinstance(getattr(config, name), LoopSettings):
            hashed[name] = {key: value for key, value in hashed[name].items() if key not in SAVE_ONLY}
    for path, before in ADDED_LATER.items():
        *parents, key = path.split(".")
        if parents[0] in sections:
            owner = hashed
            for parent in parents:
                owner = owner[parent]
            if owner[key] == before:
                del owner[key]
    if seed:
        hashed["seed"] = config.seed
    return hash_json(hashed)


def theta0_config_sha256(config: LtSoupsConfig) -> str:
    return _bits_sha256(config, THETA0_SECTIONS, seed=False)


def member_config_sha256(config: LtSoupsConfig) -> str:
    """A member records the seed it trained with (derived from the run seed, factor and replica) on its own."""
    return _bits_sha256(config, MEMBER_SECTIONS, seed=False)


def legacy_member_config_sha256(config: LtSoupsConfig) -> str:
    """What members of sidecar version 1 recorded: every setting of their sections, resume_every included."""
    return config.section_hash(*MEMBER_SECTIONS)


def merge_config_sha256(config: LtSoupsConfig) -> str:
    return _bits_sha256(config, MERGE_SECTIONS, seed=True)


def head_config_sha256(config: LtSoupsConfig) -> str:
    """Retraining the head draws its data order (and with head_init random, its head) from the run seed."""
    return _bits_sha256(config, HEAD_SECTIONS, seed=True)
