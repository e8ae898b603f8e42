"""LoRA members are folded before they are merged (the authors' merge_lora_weights_with_sd), and the
folded soup goes back into the run's LoRA classifier computing exactly what the soup computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_config import validate_config

from ltsoups.checkpoint import save_checkpoint
from ltsoups.contracts import FactorGroup
from ltsoups.io.safetensors import load_tensors
from ltsoups.merging import MergeInputs, TensorCollector
from ltsoups.peft.adapters import fold_lora
from ltsoups.plugins.mergers import RecursiveMerger, RecursiveParams, UniformMerger, UniformParams
from ltsoups.stages.context import RunContext

LORA = "mlp.parametrizations.weight"
W0 = torch.ones(3, 2)  # the frozen weight (out 3, in 2); LoRA rank 1


def lora_member(path: Path, a: list[list[float]], b: list[list[float]], head: float) -> Path:
    tensors = {
        f"{LORA}.original": W0,
        f"{LORA}.0.lora_a": torch.tensor(a),  # (in, r)
        f"{LORA}.0.lora_b": torch.tensor(b),  # (r, out)
        "head.weight": torch.full((2,), head),
    }
    save_checkpoint(path, tensors, kind="member")
    return path


@pytest.fixture
def lora_soup_inputs(tmp_path: Path) -> tuple[Path, list[FactorGroup]]:
    theta0 = lora_member(tmp_path / "theta0.safetensors", [[1.0], [1.0]], [[0.0, 0.0, 0.0]], head=0.0)  # B = 0
    members = (
        lora_member(tmp_path / "m1.safetensors", [[1.0], [0.0]], [[2.0, 4.0, 6.0]], head=1.0),
        lora_member(tmp_path / "m2.safetensors", [[0.0], [2.0]], [[1.0, 0.0, -1.0]], head=3.0),
    )
    return theta0, [FactorGroup(1, members)]


def merged(weights: list[tuple[Path, float]], fold: bool) -> dict[str, torch.Tensor]:
    with MergeInputs.open([path for path, _ in weights], fold) as inputs:
        collector = TensorCollector(inputs.layout)
        inputs.weighted_sums([weights], [collector])
    return collector.tensors


def test_lora_members_are_folded_then_merged_by_hand(lora_soup_inputs) -> None:
    theta0, groups = lora_soup_inputs
    # Member 1: (A B)^T / 1 = [[2, 0], [4, 0], [6, 0]], so W1 = [[3, 1], [5, 1], [7, 1]].
    # Member 2: (A B)^T = [[0, 2], [0, 0], [0, -2]], so W2 = [[1, 3], [1, 1], [1, -1]]. theta_0: B = 0, W0.
    soup = merged(UniformMerger(UniformParams()).coefficients(theta0, groups), fold=True)
    assert sorted(soup) == ["head.weight", "mlp.weight"]  # a plain encoder checkpoint
    assert torch.equal(soup["mlp.weight"], torch.tensor([[2.0, 2.0], [3.0, 1.0], [4.0, 0.0]]))
    assert torch.equal(soup["head.weight"], torch.full((2,), 2.0))
    recursive = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.5}))
    soup = merged(recursive.as_weighted_sum(theta0, groups), fold=True)  # 0.5 W0 + 0.5 mean(W1, W2)
    assert torch.equal(soup["mlp.weight"], torch.tensor([[1.5, 1.5], [2.0, 1.0], [2.5, 0.5]]))


def test_without_folding_the_factors_are_averaged_separately(lora_soup_inputs) -> None:
    theta0, groups = lora_soup_inputs
    soup = merged(UniformMerger(UniformParams()).coefficients(theta0, groups), fold=False)
    assert torch.equal(soup[f"{LORA}.0.lora_a"], torch.tensor([[0.5], [1.0]]))
    assert torch.equal(soup[f"{LORA}.0.lora_b"], torch.tensor([[1.5, 2.0, 2.5]]))
    # Its effective weight W0 + (mean A)(mean B)^T is not the mean of the members' weights.
    assert not torch.equal(fold_lora(soup)["mlp.weight"], torch.tensor([[2.0, 2.0], [3.0, 1.0], [4.0, 0.0]]))


def test_fold_lora_is_the_default() -> None:
    assert validate_config({}).merge.fold_lora is True


@pytest.mark.parametrize("peft", ["lora", "lora-mlp"])
def test_a_folded_soup_runs_in_the_lora_classifier_exactly(random_mini_clip: Path, peft: str, tmp_path: Path) -> None:
    """The run's classifier is built once with its adapters: a folded soup goes into each weight's
    `original` with zero LoRA factors, and the classifier computes what the folded weights compute."""
    from tiny_config import tiny_params

    params = tiny_params(random_mini_clip)
    params["backbone"]["params"].update(peft=peft, peft_rank=2)
    context = RunContext(validate_config(params))
    model = context.zero_shot_classifier()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_b" in name:  # as training leaves them
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    images = torch.randn(3, 3, 32, 32, generator=generator)
    model.eval()
    with torch.no_grad():
        adapted = model(images)
    folded = fold_lora({name: t.clone() for name, t in model.state_dict().items()})
    save_checkpoint(tmp_path / "soup.safetensors", folded, kind="soup")
    reloaded = context.classifier_with(load_tensors(tmp_path / "soup.safetensors"), "the folded soup").eval()
    state = reloaded.state_dict()
    assert all(not state[name].any() for name in state if "lora_" in name)
    with torch.no_grad():
        assert torch.equal(reloaded(images), adapted)
