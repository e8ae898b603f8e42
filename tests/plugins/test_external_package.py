"""A plugin in a separately installed distribution works with no change to ltsoups."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "ltsoups-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed by pip into its own folder (the test env's extra site dir)."""
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("source") / "ltsoups-example")  # pip builds in place
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


def ltsoups(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ltsoups", *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


@pytest.mark.slow
def test_external_plugins_are_listed_with_their_distribution(site: Path, tmp_path: Path) -> None:
    result = ltsoups(site, "plugins", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "geometric" in result.stdout and "focal" in result.stdout and "median" in result.stdout
    assert "ltsoups-example 0.1.0" in result.stdout


@pytest.mark.slow
def test_external_sampler_drives_the_plan_and_validates_its_params(site: Path, tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps([256, 64, 16, 4]))
    result = ltsoups(
        site,
        "plan",
        "--counts",
        str(counts),
        "--json",
        "--set",
        "plan.sampler.name=geometric",
        "--set",
        "plan.sampler.params.rounds=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [row["cap"] for row in json.loads(result.stdout)] == [4, 16, 64]
    bad = ltsoups(
        site, "validate", "--set", "plan.sampler.name=geometric", "--set", "plan.sampler.params.base=1", cwd=tmp_path
    )
    assert bad.returncode == 2
    assert "plan.sampler.params.base: 1 is not allowed" in bad.stderr


# Runs beside the installed example package: its per-tensor merger, through the registry and the engine.
MERGE_WITH_THE_EXTERNAL_MERGER = """
import json, sys
from contextlib import ExitStack
from pathlib import Path
import torch
from ltsoups.checkpoint import CheckpointWriter, save_checkpoint
from ltsoups.contracts import FactorGroup
from ltsoups.io.safetensors import load_tensors
from ltsoups.merging import MergeInputs
from ltsoups.plugin_specs import MergerSpec
from ltsoups.registry import installed_registry

folder = Path(sys.argv[1])
paths = []
for index, value in enumerate([1.0, 7.0, 2.0, 10.0, 4.0]):  # theta_0; factor 1: 7, 2; factor 2: 10, 4
    paths.append(folder / f"m{index}.safetensors")
    save_checkpoint(paths[-1], {"w": torch.full((3,), value), "step": torch.tensor([5])}, kind="member")
groups = [FactorGroup(1, tuple(paths[1:3])), FactorGroup(2, tuple(paths[3:]))]
results = {}
for spec in json.loads(sys.argv[2]):
    merger = installed_registry().instantiate(MergerSpec.model_validate(spec))
    targets = [folder / f"{spec['name']}-{k}.safetensors" for k in (1, 2)]
    with MergeInputs.open(paths) as inputs, ExitStack() as stack:
        writers = [stack.enter_context(CheckpointWriter(t, inputs.layout, "soup")) for t in targets]
        inputs.per_tensor(merger, paths[0], groups, writers)
    results[spec["name"]] = [load_tensors(t)["w"].tolist() for t in targets]
print(json.dumps(results))
"""


@pytest.mark.slow
def test_an_external_per_tensor_merger_merges_alone_and_inside_a_factor(site: Path, tmp_path: Path) -> None:
    specs = [{"name": "median"}, {"name": "recursive", "params": {"lambda": 0.5, "within": {"name": "median"}}}]
    result = subprocess.run(
        [sys.executable, "-c", MERGE_WITH_THE_EXTERNAL_MERGER, str(tmp_path), json.dumps(specs)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    merged = json.loads(result.stdout)
    # Lower medians: factor 1 of (7, 2) is 2; all four (2, 4, 7, 10): 4; factor 2 of (10, 4): 4.
    assert merged["median"] == [[2.0] * 3, [4.0] * 3]
    # Recursive, lambda 0.5, median inside each factor: 0.5 * 1 + 0.5 * 2 = 1.5; 0.5 * 1.5 + 0.5 * 4 = 2.75.
    assert merged["recursive"] == [[1.5] * 3, [2.75] * 3]


@pytest.mark.slow
def test_the_plugin_contract_tests_check_the_external_plugins(site: Path) -> None:
    contracts = Path(__file__).with_name("test_plugin_contracts.py")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            str(contracts),
            "-k",
            "geometric or focal or median",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=EXAMPLE.parents[1],
        check=False,
    )
    assert result.returncode == 0, result.stdout
    # Params checks, then behaviour checks (the merger's per-tensor ones among them).
    for plugin in ("samplers/geometric", "losses/focal", "mergers/median", "-geometric", "-focal", "-median"):
        assert f"{plugin}] PASSED" in result.stdout, result.stdout


@pytest.mark.slow  # a fresh interpreter imports torch and the CLI from scratch
def test_without_the_package_its_names_are_unknown(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ltsoups", "validate", "--set", "train.loss.name=focal"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "train.loss.name: 'focal' is not allowed: unknown loss 'focal'; installed:" in result.stderr
