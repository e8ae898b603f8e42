"""The streaming merge engine and the linear mergers, against hand computations."""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from soups import merge_weighted

from ltsoups import merging
from ltsoups.checkpoint import CheckpointWriter, open_checkpoint, save_checkpoint
from ltsoups.contracts import FactorGroup, PerTensorMerger, Weights
from ltsoups.io.safetensors import CheckpointError, TensorFileReader, load_tensors
from ltsoups.merging import MergeInputs
from ltsoups.plugins.mergers import (
    RecursiveMerger,
    RecursiveParams,
    TaskArithmeticMerger,
    TaskArithmeticParams,
    UniformMerger,
    UniformParams,
)
from ltsoups.plugins.task_vectors import TiesMerger, TiesParams
from ltsoups.provenance import hash_file


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


def recursive(**params: object) -> RecursiveMerger:
    return RecursiveMerger(RecursiveParams.model_validate(params))


def write_prefixes(sums: list[Weights], folder: Path) -> list[dict[str, torch.Tensor]]:
    """Every sum written in one pass of the engine, read back."""
    targets = [folder / f"prefix{k}.safetensors" for k in range(len(sums))]
    with MergeInputs.open([p for weights in sums for p, _ in weights]) as inputs, ExitStack() as stack:
        writers = [stack.enter_context(CheckpointWriter(t, inputs.layout, "soup")) for t in targets]
        inputs.weighted_sums(sums, writers)
    return [load_tensors(target) for target in targets]


def test_recursive_merge_matches_hand_computation(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    weights = recursive(**{"lambda": 0.7}).as_weighted_sum(theta0, groups)
    # Theta_1 = 0.7 * 1 + 0.3 * mean(2, 4) = 1.6 ; Theta_2 = 0.7 * 1.6 + 0.3 * mean(10, 20) = 5.62
    merged = load_tensors(merge_weighted(weights, tmp_path / "soup.safetensors").path)
    torch.testing.assert_close(merged["w"], torch.full((2, 3), 5.62))
    torch.testing.assert_close(merged["b"], torch.tensor([5.62, -5.62]))
    assert sum(w for _, w in weights) == pytest.approx(1.0)
    assert dict(weights)[theta0] == pytest.approx(0.49)


def test_factor_order_is_ascending_whatever_the_input_order(soup_inputs) -> None:
    theta0, groups = soup_inputs
    merger = recursive(**{"lambda": 0.7})
    assert merger.as_weighted_sum(theta0, groups) == merger.as_weighted_sum(theta0, list(reversed(groups)))


def test_lambda_on_the_new_model_is_one_minus_lambda(soup_inputs) -> None:
    theta0, groups = soup_inputs
    previous = recursive(**{"lambda": 0.3, "weights": "previous"}).as_weighted_sum(theta0, groups)
    new = recursive(**{"lambda": 0.7, "weights": "new"}).as_weighted_sum(theta0, groups)
    for (p1, w1), (p2, w2) in zip(previous, new, strict=True):
        assert p1 == p2 and w1 == pytest.approx(w2)


def test_recursive_weights_are_the_paper_formula_unchanged(soup_inputs) -> None:
    """The default merge's weights, computed as ltsoups always has: its soups keep their bits."""
    theta0, groups = soup_inputs
    for lam, weights in ((0.7, "previous"), (0.3, "new"), (0.55, "previous")):
        keep = lam if weights == "previous" else 1.0 - lam
        expected = [(theta0, 1.0)]
        for group in groups:
            expected = [(path, w * keep) for path, w in expected]
            expected += [(member, (1.0 - keep) / len(group.members)) for member in group.members]
        assert recursive(**{"lambda": lam, "weights": weights}).as_weighted_sum(theta0, groups) == expected


@pytest.mark.parametrize("chunk", [merging.CHUNK_ELEMENTS, 100, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_weighted_sums_are_the_float64_sum_in_weight_order_bit_for_bit(
    tmp_path: Path, dtype: torch.dtype, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each running soup, written in one pass beside the others and a slice at a time, is the same bits as
    the engine has always computed: every whole input widened to float64 and added in the order of the
    weights, then stored (the default merge's soups do not change)."""
    monkeypatch.setattr(merging, "CHUNK_ELEMENTS", chunk)
    generator = torch.Generator().manual_seed(3)
    paths = []
    for index in range(7):
        tensors = {"w": torch.randn(33, 17, generator=generator).to(dtype), "v": torch.randn(5).to(dtype)}
        paths.append(tmp_path / f"m{index}.safetensors")
        save_checkpoint(paths[-1], tensors, kind="member")
    theta0, members = paths[0], paths[1:]
    groups = [FactorGroup(2**k, tuple(members[2 * k : 2 * k + 2])) for k in range(3)]
    sums = [recursive().as_weighted_sum(theta0, groups[:k]) for k in range(1, 4)]
    for weights, written in zip(sums, write_prefixes(sums, tmp_path), strict=True):
        for name in ("w", "v"):
            total = torch.zeros(written[name].shape, dtype=torch.float64)
            for path, weight in weights:
                total.add_(load_tensors(path)[name].to(torch.float64), alpha=weight)
            assert torch.equal(written[name], total.to(dtype))


def test_running_soups_read_each_input_tensor_once(tmp_path: Path, soup_inputs, monkeypatch) -> None:
    theta0, groups = soup_inputs
    read: dict[tuple[str, str], int] = defaultdict(int)  # elements read of each tensor of each file
    read_range = TensorFileReader.read_range

    def counted(self: TensorFileReader, name: str, start: int, count: int, scratch: torch.Tensor) -> torch.Tensor:
        read[self.path.name, name] += count
        return read_range(self, name, start, count, scratch)

    monkeypatch.setattr(TensorFileReader, "read_range", counted)
    monkeypatch.setattr(merging, "CHUNK_ELEMENTS", 4)  # slices smaller than the tensors
    sums = [recursive().as_weighted_sum(theta0, groups[:k]) for k in (1, 2)]
    write_prefixes(sums, tmp_path)
    inputs = {path.name for weights in sums for path, _ in weights}
    assert read == {(file, name): size for file in inputs for name, size in (("w", 6), ("b", 2))}


def test_uniform_soup(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    out = merge_weighted(UniformMerger(UniformParams()).coefficients(theta0, groups), tmp_path / "u.safetensors")
    torch.testing.assert_close(load_tensors(out.path)["w"], torch.full((2, 3), 9.0))
    with_theta0 = UniformMerger(UniformParams(include_theta0=True)).coefficients(theta0, groups)
    assert with_theta0[0] == (theta0, 0.2)


@pytest.mark.parametrize(("combine", "scale"), [("mean", 1.0), ("mean", 0.5), ("sum", 0.3), ("sum", 1.5)])
def test_task_arithmetic_by_hand(tmp_path: Path, soup_inputs, combine: str, scale: float) -> None:
    theta0, groups = soup_inputs
    merger = TaskArithmeticMerger(TaskArithmeticParams(scale=scale, combine=combine))
    merged = load_tensors(merge_weighted(merger.coefficients(theta0, groups), tmp_path / "ta.safetensors").path)
    deltas = [2.0 - 1.0, 4.0 - 1.0, 10.0 - 1.0, 20.0 - 1.0]
    w = 0.25 if combine == "mean" else 1.0
    expected = 1.0 + scale * sum(w * delta for delta in deltas)  # theta_0 + s * sum_k w_k (theta_k - theta_0)
    torch.testing.assert_close(merged["w"], torch.full((2, 3), expected))
    torch.testing.assert_close(merged["b"], torch.tensor([expected, -expected]))


def test_task_arithmetic_inside_a_factor_folds_linearly(soup_inputs) -> None:
    """A linear within-factor step keeps the recursive merge linear, one weight per checkpoint."""
    theta0, groups = soup_inputs
    within = {"name": "task-arithmetic", "params": {"scale": 2.0}}
    weights = dict(recursive(**{"lambda": 0.5, "within": within}).as_weighted_sum(theta0, groups))
    # mean_1 = theta_0 + 2 * mean(tau) = -1 theta_0 + theta_f1a + theta_f1b; Theta_1 = 0.5 theta_0 + 0.5 mean_1
    # Theta_2 = 0.5 Theta_1 + 0.5 (-theta_0 + theta_f2a + theta_f2b)
    assert weights[theta0] == pytest.approx(0.5 * (0.5 - 0.5) - 0.5)
    assert [weights[m] for g in groups for m in g.members] == pytest.approx([0.25, 0.25, 0.5, 0.5])


def test_integer_buffers_are_copied_not_averaged(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.safetensors", 1.0, {"ids": torch.arange(3)})
    b = _write(tmp_path / "b.safetensors", 3.0, {"ids": torch.arange(3)})
    merged = load_tensors(merge_weighted([(a, 0.5), (b, 0.5)], tmp_path / "m.safetensors").path)
    assert merged["ids"].dtype == torch.int64 and merged["ids"].tolist() == [0, 1, 2]


def test_a_streamed_soup_is_a_verified_checkpoint(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    out = merge_weighted(recursive().as_weighted_sum(theta0, groups), tmp_path / "soup.safetensors", upto_factor=2)
    checkpoint = open_checkpoint(out.path, expect_kind="soup")
    assert checkpoint.sidecar.weights_sha256 == hash_file(out.path)
    sidecar = checkpoint.sidecar
    assert (sidecar.num_tensors, sidecar.num_parameters, sidecar.upto_factor) == (2, 8, 2)
    assert sidecar.inputs is not None and sidecar.inputs[0].path == str(theta0)


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


def test_merge_refuses_a_checkpoint_weighed_twice(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.safetensors", 1.0)
    with pytest.raises(ValueError, match=r"names .*good\.safetensors more than once"):
        merge_weighted([(good, 0.5), (good, 0.5)], tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_an_interrupted_multi_output_merge_writes_none_of_its_outputs(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    sums = [recursive().as_weighted_sum(theta0, groups[:k]) for k in (1, 2)]
    targets = [tmp_path / "out" / f"p{k}.safetensors" for k in (1, 2)]

    class Failing(CheckpointWriter):
        def write_part(self, name: str, part: torch.Tensor) -> None:
            if name == "w":
                raise OSError("disk full")
            super().write_part(name, part)

    paths = [p for weights in sums for p, _ in weights]
    with pytest.raises(OSError, match="disk full"), MergeInputs.open(paths) as inputs, ExitStack() as stack:
        writers = [stack.enter_context(CheckpointWriter(targets[0], inputs.layout, "soup"))]
        writers.append(stack.enter_context(Failing(targets[1], inputs.layout, "soup")))
        inputs.weighted_sums(sums, writers)
    assert list((tmp_path / "out").iterdir()) == []


def _recorded(paths: list[Path]) -> dict[Path, str]:
    return {path: hash_file(path) for path in paths}


@pytest.mark.parametrize("merger", [UniformMerger(UniformParams()), TiesMerger(TiesParams(density=0.5))])
def test_an_input_altered_after_its_hash_was_recorded_fails_the_pass_naming_it_and_nothing_is_written(
    tmp_path: Path, soup_inputs, merger: PerTensorMerger
) -> None:
    """The inputs are hashed as the pass reads them; a changed byte fails it before any output is committed."""
    theta0, groups = soup_inputs
    paths = [theta0, *(m for g in groups for m in g.members)]
    recorded = _recorded(paths)
    altered = groups[1].members[0]
    data = bytearray(altered.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's data: the file still parses and every value stays finite
    altered.write_bytes(bytes(data))
    target = tmp_path / "out" / "soup.safetensors"
    with (
        pytest.raises(CheckpointError, match=rf"{altered}: sha256 .* does not match its sidecar"),
        MergeInputs.open(paths, sha256=recorded) as inputs,
        CheckpointWriter(target, inputs.layout, "soup") as writer,
    ):
        weights = merger.as_weighted_sum(theta0, groups)
        if weights is None:
            inputs.per_tensor(merger, theta0, groups, [writer])
        else:
            inputs.weighted_sums([weights], [writer])
    assert list((tmp_path / "out").iterdir()) == []


def test_a_truncated_input_is_named_as_unlike_its_sidecar_not_as_a_bad_header(tmp_path: Path, soup_inputs) -> None:
    theta0, _ = soup_inputs
    recorded = _recorded([theta0])
    theta0.write_bytes(theta0.read_bytes()[:-8])  # the header now claims more data than the file holds
    with (
        pytest.raises(CheckpointError, match=rf"{theta0}: sha256 .* does not match its sidecar"),
        MergeInputs.open([theta0], sha256=recorded),
    ):
        pass


def test_inputs_whose_hash_matches_merge_as_unverified_ones(tmp_path: Path, soup_inputs) -> None:
    theta0, groups = soup_inputs
    paths = [theta0, *(m for g in groups for m in g.members)]
    weights = recursive().as_weighted_sum(theta0, groups)
    outputs = []
    for recorded in (None, _recorded(paths)):
        target = tmp_path / f"{recorded is None}.safetensors"
        with MergeInputs.open(paths, sha256=recorded) as inputs, CheckpointWriter(target, inputs.layout, "soup") as w:
            inputs.weighted_sums([weights], [w])
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
