"""||theta - theta_0|| of the image encoder from checkpoint files, by hand, LoRA folded."""

import math
from pathlib import Path

import pytest
import torch

from ltsoups.analysis.weight_change import weight_change
from ltsoups.io.safetensors import CheckpointError, write_safetensors


def write(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    write_safetensors(path, tensors)
    return path


def test_only_the_encoder_counts(tmp_path: Path) -> None:
    theta0 = write(tmp_path / "t0.safetensors", {"encoder.w": torch.tensor([3.0, 4.0]), "head.weight": torch.ones(2)})
    tuned = write(tmp_path / "t.safetensors", {"encoder.w": torch.tensor([0.0, 4.0]), "head.weight": torch.zeros(2)})
    change = weight_change(tuned, theta0)
    assert change.absolute == pytest.approx(3.0)
    assert change.relative == pytest.approx(3.0 / 5.0)
    assert weight_change(theta0, theta0).absolute == 0.0


def test_a_lora_model_is_measured_by_its_folded_weights(tmp_path: Path) -> None:
    prefix = "encoder.blk.parametrizations.weight."
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[1.0], [2.0]])  # (in, r = 1)
    theta0 = {prefix + "original": weight, prefix + "0.lora_a": a, prefix + "0.lora_b": torch.zeros(1, 2)}
    tuned = {**theta0, prefix + "0.lora_b": torch.tensor([[1.0, 1.0]])}
    # W + (A B)^T / r moves by (A B)^T = [[1, 2], [1, 2]]: norm sqrt(10); the raw factors moved only sqrt(2).
    change = weight_change(write(tmp_path / "t.safetensors", tuned), write(tmp_path / "t0.safetensors", theta0))
    assert change.absolute == pytest.approx(math.sqrt(10))
    assert change.relative == pytest.approx(math.sqrt(10) / math.sqrt(2))


def test_a_folded_soup_is_compared_with_a_lora_theta0_by_its_effective_weights(tmp_path: Path) -> None:
    prefix = "encoder.blk.parametrizations.weight."
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    factors = {prefix + "0.lora_a": torch.ones(2, 1), prefix + "0.lora_b": torch.zeros(1, 2)}
    theta0 = {prefix + "original": weight, **factors}
    folded = {"encoder.blk.weight": weight + 0.5}  # a merge folds LoRA members: no factors are left
    change = weight_change(write(tmp_path / "s.safetensors", folded), write(tmp_path / "t0.safetensors", theta0))
    assert change.absolute == pytest.approx(math.sqrt(4 * 0.25))


def test_checkpoints_of_other_layouts_are_refused(tmp_path: Path) -> None:
    theta0 = write(tmp_path / "t0.safetensors", {"encoder.w": torch.zeros(2)})
    other = write(tmp_path / "t.safetensors", {"encoder.w": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"encoder\.w"):
        weight_change(other, theta0)
