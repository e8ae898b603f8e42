"""The CLI end to end on a tiny config: every stage through `ltsoups`, then the results."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ltsoups.checkpoint import open_checkpoint
from ltsoups.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_stage_by_stage_run_matches_the_method(tiny_params_file: Path) -> None:
    outputs = tiny_params_file.parent / "outputs"
    p = ["--params", str(tiny_params_file)]
    invoke("prepare", *p)
    plan = json.loads((outputs / "plan" / "plan.json").read_text())
    members = [m["member"] for m in plan["members"]]
    assert members == ["f1-r0", "f1-r1", "f2-r0", "f2-r1", "f4-r0", "f4-r1"]
    invoke("theta0", *p)
    for member in members:
        invoke("train-member", member, *p)
        sidecar = open_checkpoint(outputs / "members" / member / "weights.safetensors", "member").sidecar
        manifest = next(m for m in plan["members"] if m["member"] == member)
        assert sidecar.manifest_sha256 == manifest["manifest_sha256"]
        assert sidecar.config_sha256 and sidecar.code_version
    merged = invoke("merge", *p)
    assert "Running soups (val)" in merged.output
    soup = open_checkpoint(outputs / "soup" / "soup.safetensors", "soup").sidecar
    weights = [entry.weight for entry in soup.inputs or []]
    assert weights[0] == pytest.approx(0.7**3)  # theta_0 after three folds with lambda 0.7
    assert sum(weights) == pytest.approx(1.0)
    invoke("retrain-head", *p)
    result = invoke("evaluate", *p)
    for row in ("theta0 (zero-shot)", "soup up to 2^0", "soup up to 2^1", "stage 1 (soup)", "stage 1 + CR"):
        assert row in result.output
    metrics = json.loads((outputs / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"zero_shot", "stage1", "final"}
    assert {"overall", "balanced", "medium", "few"} <= set(metrics["final"])
    per_class = json.loads((outputs / "eval" / "per_class.json").read_text())
    assert len(per_class) == 6 and {"class", "train_count", "group", "final"} <= set(per_class[0])
    assert "stage 1 + CR" in invoke("report", *p).output


@pytest.mark.slow
def test_same_seed_gives_bit_identical_members(tiny_params_file: Path, tmp_path: Path) -> None:
    first = ["--params", str(tiny_params_file)]
    second = [*first, "--set", f"workdir={tmp_path / 'again'}"]
    for args in (first, second):
        invoke("prepare", *args)
        invoke("theta0", *args)
        invoke("train-member", "f2-r1", *args)
    a = tiny_params_file.parent / "outputs" / "members" / "f2-r1" / "weights.safetensors"
    b = tmp_path / "again" / "members" / "f2-r1" / "weights.safetensors"
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["merge.merger.params.lambda=1.5"],
            "merge.merger.params.lambda: 1.5 is not allowed: Input should be less than or equal to 1",
        ),
        (
            ["plan.sampler.params.rounds=-1"],
            "plan.sampler.params.rounds: -1 is not allowed: Input should be greater than or equal to 0",
        ),
        (
            ["runtime.device=gpu"],
            "runtime.device: 'gpu' is not allowed: not a device; allowed: 'auto' (cuda if available), 'cpu', 'cuda' "
            "or 'cuda:N' (N from 0)",
        ),
        (
            ["merge.merger.name=tie"],
            "merge.merger.name: 'tie' is not allowed: unknown merger 'tie'; installed: dare, greedy, recursive, "
            "task-arithmetic, ties, uniform",
        ),
    ],
)
def test_bad_values_exit_non_zero_and_write_nothing(
    tiny_params_file: Path, overrides: list[str], expected: str
) -> None:
    before = sorted(p.name for p in tiny_params_file.parent.iterdir())
    for command in ("prepare", "run"):
        args = [command, "--params", str(tiny_params_file)]
        for override in overrides:
            args += ["--set", override]
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 2
        assert expected in result.output
    assert sorted(p.name for p in tiny_params_file.parent.iterdir()) == before


@pytest.mark.parametrize(
    "command", [["theta0"], ["train-member", "f1-r0"], ["merge"], ["retrain-head"], ["evaluate"], ["run"]]
)
def test_a_gpu_this_machine_lacks_is_refused_before_anything_is_written_or_logged(
    tiny_params_file: Path, command: list[str]
) -> None:
    beyond = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: none here, whatever the machine
    store = tiny_params_file.parent / "mlflow.db"
    before = sorted(p.name for p in tiny_params_file.parent.iterdir())
    tracked = ["--set", "tracking.enabled=true", "--set", f"tracking.uri=sqlite:///{store}"]
    args = [*command, "--params", str(tiny_params_file), "--set", f"runtime.device={beyond}", *tracked]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert f"runtime.device: '{beyond}' is not allowed on this machine" in result.output
    assert "allowed here: 'auto'" in result.output
    assert sorted(p.name for p in tiny_params_file.parent.iterdir()) == before  # no outputs, no MLflow store


def test_plan_command_prints_the_cifar_shares(tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps([int(500 * 0.01 ** (i / 99)) for i in range(100)]))
    result = invoke("plan", "--counts", str(counts), "--rounds", "5", "--replicas", "2", "--json")
    rows = json.loads(result.output)
    assert [r["factor"] for r in rows] == [1, 2, 4, 8, 16, 32]
    assert next(r for r in rows if r["factor"] == 32)["share"] == 67.26
    table = invoke("plan", "--counts", str(counts), "--rounds", "5").output
    assert "67.26" in table and "2^5 = 32" in table


def test_plan_from_a_dataset_needs_only_its_counts(tmp_path: Path) -> None:
    result = invoke("plan", "--dataset", "cifar100-lt", "--rounds", "5", "--json", "--set", f"workdir={tmp_path}")
    rows = json.loads(result.output)
    assert next(r for r in rows if r["factor"] == 32)["share"] == 67.26
    assert not (tmp_path / "data").exists()
    mine = ["--set", "data.dataset.params.n_max=250"]  # a --set of the chosen dataset's params applies to it
    smaller = json.loads(invoke("plan", "--dataset", "cifar100-lt", "--json", *mine).output)
    assert sum(r["size"] for r in smaller if r["factor"] == 1) < sum(r["size"] for r in rows if r["factor"] == 1)


def test_run_with_a_method_runs_that_baseline_over_the_params(tiny_params_file: Path) -> None:
    outputs = tiny_params_file.parent / "outputs"
    invoke("run", "--method", "zero-shot", "--params", str(tiny_params_file), "--set", "head.scale=20")
    plan = json.loads((outputs / "plan" / "plan.json").read_text())
    assert plan["members"] == [] and plan["sampler"]["name"] == "zero-shot"
    rows = [row["model"] for row in json.loads((outputs / "eval" / "results.json").read_text())["rows"]]
    assert rows == ["theta0 (zero-shot)", "stage 1 (soup)"]  # zero-shot: no CR
    theta0 = open_checkpoint(outputs / "theta0" / "theta0.safetensors", "theta0").sidecar
    assert theta0.head_scale == 20  # --set comes after the method's settings
