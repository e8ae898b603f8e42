from pathlib import Path

import pytest
import torch

from ltsoups.checkpoint import save_checkpoint
from ltsoups.contracts import FactorGroup
from ltsoups.io.safetensors import CheckpointError, load_tensors
from ltsoups.merging import merge_weighted
from ltsoups.plugins.mergers import RecursiveMerger, RecursiveParams, UniformMerger, UniformParams


def _write(path: Path, value: float, extra: dict[str, torch.Tensor] | None = None) -> Path:
    tensors = {"w": torch.full((2, 3), value), "b": torch.tensor([value, -value]), **(extra or {})}
    save_checkpoint(path, tensors, kind="member")
    return path


@pytest.fixture
def soup_inputs(tmp_path: Path) -> tuple[Path, list[FactorGroup]]:
    theta0 = _write(tmp_path / "theta0.safetensors", 1.0)
    groups = [
        FactorGroup(1, (_write(tmp_path / "f1a.safetensors", 2.0), _write(tmp_path / "f1b.safetensors", 4.0))),
        FactorGroup(2, (_write(tmp_path / "f2a.safetensors", 10.0), _write(tmp_path / "f2b.safetensors", 20.0))),
    ]
    return theta0, groups


def test_recursive_merge_matches_hand_computation(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    merger = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.7}))
    # Theta_1 = 0.7 * 1 + 0.3 * mean(2, 4) = 1.6 ; Theta_2 = 0.7 * 1.6 + 0.3 * mean(10, 20) = 5.62
    out = merge_weighted(merger.coefficients(theta0, groups), tmp_path / "soup.safetensors")
    merged = load_tensors(out.path)
    torch.testing.assert_close(merged["w"], torch.full((2, 3), 5.62))
    torch.testing.assert_close(merged["b"], torch.tensor([5.62, -5.62]))
    weights = dict(merger.coefficients(theta0, groups))
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights[theta0] == pytest.approx(0.49)


def test_factor_order_is_ascending_whatever_the_input_order(soup_inputs) -> None:
    theta0, groups = soup_inputs
    merger = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.7}))
    assert merger.coefficients(theta0, groups) == merger.coefficients(theta0, list(reversed(groups)))


def test_lambda_on_the_new_model_is_one_minus_lambda(soup_inputs) -> None:
    theta0, groups = soup_inputs
    previous = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.3, "weights": "previous"}))
    new = RecursiveMerger(RecursiveParams.model_validate({"lambda": 0.7, "weights": "new"}))
    for (p1, w1), (p2, w2) in zip(previous.coefficients(theta0, groups), new.coefficients(theta0, groups), strict=True):
        assert p1 == p2 and w1 == pytest.approx(w2)


def test_uniform_soup(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    out = merge_weighted(UniformMerger(UniformParams()).coefficients(theta0, groups), tmp_path / "u.safetensors")
    torch.testing.assert_close(load_tensors(out.path)["w"], torch.full((2, 3), 9.0))
    with_theta0 = UniformMerger(UniformParams(include_theta0=True)).coefficients(theta0, groups)
    assert with_theta0[0] == (theta0, 0.2)


def test_integer_buffers_are_copied_not_averaged(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.safetensors", 1.0, {"ids": torch.arange(3)})
    b = _write(tmp_path / "b.safetensors", 3.0, {"ids": torch.arange(3)})
    merged = load_tensors(merge_weighted([(a, 0.5), (b, 0.5)], tmp_path / "m.safetensors").path)
    assert merged["ids"].dtype == torch.int64 and merged["ids"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"w": torch.zeros(3, 2)}, "tensor 'w' has shape [3, 2], expected [2, 3]"),
        ({"w": torch.zeros(2, 3, dtype=torch.float16)}, "tensor 'w' has dtype F16, expected F32"),
        ({"new": torch.zeros(1)}, "unexpected tensor 'new'"),
    ],
)
def test_merge_refuses_mismatched_inputs_naming_the_first_mismatch(tmp_path: Path, extra, message) -> None:
    good = _write(tmp_path / "good.safetensors", 1.0)
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, {"w": torch.ones(2, 3), "b": torch.ones(2), **extra}, kind="member")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors") as info:
        merge_weighted([(good, 0.5), (bad, 0.5)], tmp_path / "out.safetensors")
    assert message in str(info.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_merge_refuses_a_missing_tensor(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.safetensors", 1.0)
    short = tmp_path / "short.safetensors"
    save_checkpoint(short, {"w": torch.ones(2, 3)}, kind="member")
    with pytest.raises(CheckpointError, match="tensor 'b' is missing"):
        merge_weighted([(good, 0.5), (short, 0.5)], tmp_path / "out.safetensors")
