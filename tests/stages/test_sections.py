"""The config hashes stages record: a setting added later leaves the hashes recorded before it as they were."""

from __future__ import annotations

from ltsoups.config import load_config
from ltsoups.stages.sections import head_config_sha256, merge_config_sha256

# merge and retrain-head of the defaults, and of a lambda x N search, as recorded before merge.search.mode,
# merge.search.sweeps and retrain_head.trains existed
BEFORE = {
    (): (
        "063df84219ea4a12a032be31637eb1769a159555b0331ca3c1fb3284cdcb860b",
        "ce695a492b4d769c26bf74504c6fd8ed8e87c5bde7797490a7a864ac3823b4fa",
    ),
    ("merge.search.enabled=true",): ("be6ca963c96716afbb557ccbc9fa7d709ea872ae92b5b8689ecb398402e88c13", None),
}


def test_settings_added_later_are_hashed_only_away_from_what_was_done_before_them() -> None:
    for overrides, (merge, head) in BEFORE.items():
        for written in (
            [],
            ["merge.search.mode=lambda-n", "merge.search.sweeps=1", "retrain_head.trains=class-vectors"],
        ):
            config = load_config(None, [*overrides, *written])
            assert merge_config_sha256(config) == merge, (overrides, written)
            assert head is None or head_config_sha256(config) == head, (overrides, written)
    per_factor = load_config(None, ["merge.search.enabled=true", "merge.search.mode=per-factor"])
    assert merge_config_sha256(per_factor) not in {merge for merge, _ in BEFORE.values()}
    sweeps = load_config(None, ["merge.search.enabled=true", "merge.search.mode=per-factor", "merge.search.sweeps=2"])
    assert merge_config_sha256(sweeps) != merge_config_sha256(per_factor)
    lws = load_config(None, ["retrain_head.trains=class-scale"])
    assert head_config_sha256(lws) != BEFORE[()][1] and merge_config_sha256(lws) == BEFORE[()][0]
