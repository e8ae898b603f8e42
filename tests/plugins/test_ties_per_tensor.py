"""TIES trims each tensor on its own (docs/method.md, "Where our TIES and DARE differ")."""

from __future__ import annotations

from pathlib import Path

import torch
from test_task_vectors import merged

from ltsoups.checkpoint import save_checkpoint
from ltsoups.contracts import FactorGroup
from ltsoups.plugins.task_vectors import TiesMerger, TiesParams


def test_ties_keeps_the_top_share_of_every_tensor_however_small_its_task_vector(tmp_path: Path) -> None:
    # "big" moves 1000x more than "small": a whole-model trim at density 0.5 would keep only "big"'s entries.
    base = {"big": torch.zeros(4, dtype=torch.float64), "small": torch.zeros(4, dtype=torch.float64)}
    tau = {
        "big": torch.tensor([4000.0, 3000.0, 2000.0, 1000.0], dtype=torch.float64),
        "small": torch.tensor([1.0, 4.0, 2.0, 3.0], dtype=torch.float64),
    }
    theta0 = save_checkpoint(tmp_path / "theta0.safetensors", base, kind="theta0").path
    member = save_checkpoint(tmp_path / "m.safetensors", tau, kind="member").path
    out = merged(TiesMerger(TiesParams(density=0.5)), theta0, [FactorGroup(1, (member,))], tmp_path)
    assert out["big"].tolist() == [4000.0, 3000.0, 0.0, 0.0]
    assert out["small"].tolist() == [0.0, 4.0, 0.0, 3.0]
