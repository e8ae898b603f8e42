"""Classifier re-training (CR): best-val keeps the best snapshot; the head can start afresh (Kang et al.'s cRT)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_config import tiny_params, write_params

import ltsoups.stages.retrain_head as stage
from ltsoups.config import load_config
from ltsoups.io.safetensors import load_tensors
from ltsoups.pipeline import run_pipeline
from ltsoups.stages.context import RunContext
from ltsoups.stages.retrain_head import CR_SEED, HEAD_INIT_SEED, retrain_head
from ltsoups.stages.validation import ClassifierScorer, HeadScorer
from ltsoups.training.batches import derive_seed
from ltsoups.training.loop import SilentObserver
from ltsoups.workspace import Workspace

pytestmark = pytest.mark.slow  # trains a tiny run first

# CR that moves the head far and fast: a prior shift beyond the data's (tau 6) at a high learning rate, raw weights
# (no EMA), so the snapshots differ and the best one is not the last: keeping the final head would be caught.
WORSENING = [
    "retrain_head.loss={name: logit-adjusted, params: {tau: 6.0}}",
    "retrain_head.optim.lr=0.05",
    "retrain_head.ema.decay=0",
    "retrain_head.schedule.min_steps=24",
    "retrain_head.selection.mode=best-val",
    "retrain_head.selection.snapshots=6",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run on the shipped mini-CLIP (so validation accuracy means something), up to its final model."""
    root = tmp_path_factory.mktemp("cr-run")
    write_params(root, tiny_params("embedded"))
    config = load_config(root / "params.yaml", [f"workdir={root / 'outputs'}"])
    run_pipeline(RunContext(config), Workspace(root / "outputs"), lambda name: SilentObserver())
    return root


def _retrain(root: Path, tmp_path: Path, overrides: list[str]) -> dict[str, torch.Tensor]:
    run = tmp_path / "run"
    shutil.copytree(root, run)
    config = load_config(run / "params.yaml", [*overrides, f"workdir={run / 'outputs'}"])
    return load_tensors(retrain_head(RunContext(config), Workspace(run / "outputs")).checkpoint.path)


class _Recorded:
    """Wraps a scorer: every snapshot it scores, with its score, in order."""

    snapshots: list[tuple[float, dict[str, torch.Tensor]]]

    def __call__(self, state: dict[str, torch.Tensor]) -> float:
        score = super().__call__(state)  # type: ignore[misc]
        self.snapshots.append((score, {k: v.clone() for k, v in state.items()}))
        return score


@pytest.mark.parametrize(
    ("features", "extra"),
    [
        ("cached, one view", ["retrain_head.augment.enabled=false"]),
        ("cached, five crops", ["retrain_head.augment.enabled=false", "evaluation.ensemble.mode=five-crop"]),
        ("whole model", ["retrain_head.augment.enabled=true"]),
    ],
)
def test_cr_best_val_keeps_the_best_snapshot(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, features: str, extra: list[str]
) -> None:
    snapshots: list[tuple[float, dict[str, torch.Tensor]]] = []
    for name, scorer in (("HeadScorer", HeadScorer), ("ClassifierScorer", ClassifierScorer)):
        recorded = type(name, (_Recorded, scorer), {"snapshots": snapshots})
        monkeypatch.setattr(stage, name, recorded)
    final = _retrain(finished_run, tmp_path, [*WORSENING, *extra])
    scores = [score for score, _ in snapshots]
    assert len(scores) == 6, features
    best = scores.index(max(scores))  # the first of equal scores, as the authors' strict '>' keeps
    assert best < len(scores) - 1, f"{features}: the last snapshot scored best ({scores}); the test cannot tell"
    key = "weight" if "weight" in snapshots[best][1] else "head.weight"  # a head's state, or the whole model's
    assert torch.equal(final["head.weight"], snapshots[best][1][key])
    assert not torch.equal(final["head.weight"], snapshots[-1][1][key])


def test_cr_can_start_from_a_fresh_random_head(finished_run: Path, tmp_path: Path) -> None:
    """head_init random (Kang et al.'s cRT): a learning rate too small to move it leaves the seeded random head."""
    soup_head = load_tensors(finished_run / "outputs" / "soup" / "soup.safetensors")["head.weight"]
    final = _retrain(finished_run, tmp_path, ["retrain_head.head_init=random", "retrain_head.optim.lr=1e-12"])
    generator = torch.Generator().manual_seed(derive_seed(0, CR_SEED, HEAD_INIT_SEED))
    seeded = torch.nn.functional.normalize(torch.randn(soup_head.shape, generator=generator), dim=-1)
    torch.testing.assert_close(final["head.weight"], seeded, rtol=0, atol=1e-6)
    assert not torch.allclose(final["head.weight"], soup_head, atol=1e-2)
    torch.testing.assert_close(final["head.weight"].norm(dim=-1), torch.ones(len(soup_head)))  # unit rows
    merged = _retrain(finished_run, tmp_path / "merged", ["retrain_head.optim.lr=1e-12"])
    torch.testing.assert_close(merged["head.weight"], soup_head, rtol=0, atol=1e-6)  # the default: the merged head


LWS = [
    "retrain_head.trains=class-scale",
    "retrain_head.sampling.mode=class-balanced",
    "retrain_head.loss={name: cross-entropy, params: {}}",
    "retrain_head.optim={name: sgd, lr: 0.2, momentum: 0.9, weight_decay: 5.0e-4, batch_size: 16}",
]


@pytest.mark.parametrize("augment", ["false", "true"])
def test_lws_trains_a_factor_per_class_and_nothing_else(finished_run: Path, tmp_path: Path, augment: str) -> None:
    """Kang et al.'s LWS: encoder and class vectors are the soup's, bit for bit; only head.class_scale is new."""
    soup = load_tensors(finished_run / "outputs" / "soup" / "soup.safetensors")
    final = _retrain(finished_run, tmp_path, [*LWS, f"retrain_head.augment.enabled={augment}"])
    assert set(final) == {*soup, "head.class_scale"}
    assert all(torch.equal(final[name], soup[name]) for name in soup)
    factors = final["head.class_scale"]
    assert factors.shape == (soup["head.weight"].shape[0],) and not torch.equal(factors, torch.ones_like(factors))


def test_cr_without_lws_saves_the_tensors_it_always_did(finished_run: Path, tmp_path: Path) -> None:
    soup = load_tensors(finished_run / "outputs" / "soup" / "soup.safetensors")
    final = _retrain(finished_run, tmp_path, ["retrain_head.trains=class-vectors"])
    assert list(final) == list(soup)  # same names, same order: no head.class_scale
    assert not torch.equal(final["head.weight"], soup["head.weight"])
