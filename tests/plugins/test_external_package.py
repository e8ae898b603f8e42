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
    assert "geometric" in result.stdout and "focal" in result.stdout
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


@pytest.mark.slow
def test_the_plugin_contract_tests_check_the_external_plugins(site: Path) -> None:
    contracts = Path(__file__).with_name("test_plugin_contracts.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(contracts), "-k", "geometric or focal"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=EXAMPLE.parents[1],
        check=False,
    )
    assert result.returncode == 0, result.stdout
    for plugin in ("samplers/geometric", "losses/focal", "-geometric", "-focal"):  # Params checks, behaviour checks
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
