"""params.yaml's ``members``: the member ids dvc.yaml trains (one stage each), checked against the plan.

DVC's templating cannot compute 2^0..2^N, so dvc.yaml iterates over this list; a list that disagrees
with the sampler would train the wrong members, so it is an error before anything is written.
"""

from __future__ import annotations

import numpy as np

from ltsoups.config import ConfigError, ConfigIssue, LtSoupsConfig
from ltsoups.plan import member_id
from ltsoups.registry import PluginRegistry, installed_registry


def planned_members(config: LtSoupsConfig, registry: PluginRegistry) -> list[str]:
    """The member ids the configured sampler draws for the configured dataset (class counts only, no images)."""
    counts = np.asarray(registry.instantiate(config.data.dataset).class_counts())
    sampler = registry.instantiate(config.plan.sampler)
    return [member_id(draw.factor, draw.replica) for draw in sampler.draws(counts, config.seed)]


def check_member_list(config: LtSoupsConfig, source: str, registry: PluginRegistry | None = None) -> None:
    """Raise ConfigError when ``members`` is set and names other members than the plan trains."""
    if config.members is None:
        return
    expected = planned_members(config, registry or installed_registry())
    if sorted(config.members) != sorted(expected):
        spec = config.plan.sampler
        settings = ", ".join(
            f"{key} {value}" for key, value in spec.params.model_dump(mode="json", by_alias=True).items()
        )
        message = (
            f"the plan ({spec.name}: {settings}) trains {len(expected)} members; "
            f"set `members: [{', '.join(expected)}]` so that dvc.yaml has one train-member stage per member"
        )
        raise ConfigError([ConfigIssue("members", list(config.members), message)], source)
