"""The store: entries reach workdirs as links that the workdir's own writes never change; cached logits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tiny_config import tiny_params, validate_config

from ltsoups.checkpoint import open_checkpoint, save_checkpoint, sidecar_path
from ltsoups.compare.store import CachedPredictor, link
from ltsoups.predictions import Split
from ltsoups.workspace import StoreWorkspace


def test_a_linked_entry_is_the_same_file_until_the_workdir_rewrites_it(tmp_path: Path) -> None:
    store = StoreWorkspace(tmp_path / "store")
    entry = save_checkpoint(store.member("k"), {"w": torch.ones(3)}, kind="member", config_sha256="c")
    target = tmp_path / "run" / "members" / "f1-r0" / "weights.safetensors"
    link(entry.path, target)
    link(entry.path, target)  # linking again is a no-op
    assert os.path.samefile(entry.path, target) and os.path.samefile(sidecar_path(entry.path), sidecar_path(target))
    assert open_checkpoint(target, "member").sidecar == entry.sidecar  # the sidecar is unchanged: stages accept it
    save_checkpoint(target, {"w": torch.zeros(3)}, kind="member")  # a stage writing into the workdir
    assert torch.equal(open_checkpoint(entry.path, "member").load()["w"], torch.ones(3))


def test_logits_are_computed_once_per_weights_split_and_prediction_config(tmp_path: Path) -> None:
    calls = []

    def inner(checkpoint, split):
        calls.append((checkpoint.sidecar.weights_sha256, split))
        return np.full((2, 3), len(calls), dtype=np.float32)

    store = StoreWorkspace(tmp_path)
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(1)}, kind="member")
    labels = {Split.TEST: np.array([0, 2]), Split.VAL: np.array([1, 1])}
    config = validate_config(tiny_params("embedded"))
    first = CachedPredictor(store, config, labels, inner)
    assert first(checkpoint, Split.TEST)[0, 0] == 1 and first(checkpoint, Split.TEST)[0, 0] == 1
    assert first(checkpoint, Split.VAL)[0, 0] == 2
    trained_otherwise = validate_config(tiny_params("embedded", seed=3, train={"optim": {"lr": 0.1}}))
    assert CachedPredictor(store, trained_otherwise, labels, inner)(checkpoint, Split.TEST)[0, 0] == 1
    scaled = validate_config(tiny_params("embedded", head={"scale": 10.0}))
    assert CachedPredictor(store, scaled, labels, inner)(checkpoint, Split.TEST)[0, 0] == 3
    assert len(calls) == 3 and (first.computed, first.reused) == (2, 1)
