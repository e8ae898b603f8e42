"""The chain of custody: no stage builds on an input that another config, or other inputs, produced.

Each case starts from a clone of a finished tiny run, makes one link stale the way a user would, and
runs the next stage: it must stop, exit non-zero, name the stale file and the command that rebuilds it,
and write nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tiny_config import TINY_MEMBERS
from tiny_run import clone_run, rewrite, snapshot, tree_changes
from typer.testing import CliRunner

from ltsoups.checkpoint import open_checkpoint, save_checkpoint, sidecar_path
from ltsoups.cli.app import app
from ltsoups.config import load_config
from ltsoups.stages.sections import legacy_member_config_sha256

pytestmark = pytest.mark.slow
runner = CliRunner()

PLAN = "outputs/plan/plan.json"
SOUP = "outputs/soup/soup.safetensors"
RUNNING_F1 = "outputs/soup/running/upto-f1.safetensors"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, " ".join(result.output.split())


def refused(root: Path, *args: str) -> str:
    """Run a command that must stop before it writes anything; its message."""
    before = snapshot(root)
    code, message = invoke(*args)
    assert code == 1, message
    assert tree_changes(before, snapshot(root)) == []
    return message


def test_a_soup_of_the_previous_seeds_members_is_not_built_on(run_copy: Path) -> None:
    """Case 1: prepare and train-members with seed 1, then retrain-head and evaluate without merging again."""
    assert invoke("prepare", "--set", "seed=1")[0] == 0
    code, message = invoke("train-members", "--no-dvc", "--set", "seed=1")
    assert code == 0 and "trained 6 member(s)" in message, message
    for command, stale in (("retrain-head", SOUP), ("evaluate", RUNNING_F1)):  # evaluate reads the running soups first
        message = refused(run_copy, command, "--set", "seed=1")
        assert f"{stale}: merged with another config (seed," in message and "`ltsoups merge`" in message, message


def test_a_soup_of_members_retrained_since_is_refused(run_copy: Path) -> None:
    """The same config, but a member's bits changed since the merge (a retrain on a GPU is not bit-exact)."""
    member = run_copy / "outputs" / "members" / "f1-r0" / "weights.safetensors"
    checkpoint = open_checkpoint(member, "member")
    tensors = {name: tensor.clone() for name, tensor in checkpoint.load().items()}
    tensors["head.weight"] += 1e-3
    written = {"kind", "weights_sha256", "num_tensors", "num_parameters", "code_version", "sidecar_version"}
    record = checkpoint.sidecar.model_dump(exclude=written, exclude_none=True)
    member.unlink()
    sidecar_path(member).unlink()
    save_checkpoint(member, tensors, "member", **record)
    for command, stale in (("retrain-head", SOUP), ("evaluate", RUNNING_F1)):
        message = refused(run_copy, command)
        assert f"{stale}: merged member f1-r0 with weights" in message and "(retrained since)" in message, message
        assert "`ltsoups merge`" in message, message


def test_a_soup_merged_under_another_seed_is_stale_even_from_the_same_members(run_copy: Path) -> None:
    """The merge's config hash covers the seed: a soup is only ever current for the seed it was merged at."""
    message = refused(run_copy, "evaluate", "--set", "seed=1")
    assert f"{PLAN}: drawn with seed 0, but the config's seed is 1" in message and "`ltsoups prepare`" in message


def test_a_plan_drawn_with_other_sampler_params_is_refused(run_copy: Path) -> None:
    """Case 2: rounds changed at prepare only; merge, retrain-head and evaluate read params.yaml (rounds 2)."""
    assert invoke("prepare", "--set", "plan.sampler.params.rounds=1")[0] == 0
    for command in ("merge", "retrain-head", "evaluate"):
        message = refused(run_copy, command)
        assert f"{PLAN}: drawn by sampler" in message and "'rounds': 1" in message and "'rounds': 2" in message
        assert "`ltsoups prepare`" in message, message


def test_a_plan_edited_by_hand_is_refused(run_copy: Path) -> None:
    """Case 2: a member deleted from plan.json by hand; the merge must not average the rest."""
    plan = json.loads((run_copy / PLAN).read_text())
    plan["members"] = [entry for entry in plan["members"] if entry["member"] != "f2-r1"]
    rewrite(run_copy / PLAN, json.dumps(plan, indent=2).encode())
    for command in ("merge", "train-member f1-r0", "evaluate"):
        message = refused(run_copy, *command.split())
        assert f"{PLAN}: plan content does not match its content_sha256" in message, message
        assert "`ltsoups prepare`" in message, message


def test_a_running_soup_left_by_another_merge_is_refused(finished_run: Path, tmp_path: Path, monkeypatch) -> None:
    """Case 3: a merge at lambda 0.5 was killed after writing the running soup up to factor 1."""
    other = clone_run(finished_run, tmp_path / "other")
    monkeypatch.chdir(other)
    assert invoke("merge", "--set", "merge.merger.params.lambda=0.5")[0] == 0
    root = clone_run(finished_run, tmp_path / "run")
    monkeypatch.chdir(root)
    for path in (other / RUNNING_F1, sidecar_path(other / RUNNING_F1)):
        target = root / path.relative_to(other)
        target.unlink()
        shutil.copyfile(path, target)
    message = refused(root, "evaluate")
    assert f"{RUNNING_F1}: merged with another config" in message and "`ltsoups merge`" in message, message


def test_a_setting_that_cannot_change_the_bits_retrains_nothing(run_copy: Path) -> None:
    """Case 10: resume_every decides when a state is saved, never what is computed."""
    before = snapshot(run_copy)
    code, message = invoke("train-members", "--no-dvc", "--set", "train.resume_every=3")
    assert code == 0 and "trained 0 member(s); 6 already up to date" in message, message
    assert tree_changes(before, snapshot(run_copy)) == []
    code, message = invoke("evaluate", "--set", "train.resume_every=3", "--set", "retrain_head.resume_every=7")
    assert code == 0, message


def _as_previous_release(sidecar: Path, legacy_config_sha256: str) -> None:
    """Rewrite a member's sidecar as the previous release wrote it: no version, every train setting hashed."""
    record = json.loads(sidecar.read_text())
    for key in ("sidecar_version", "classifier"):
        record.pop(key, None)
    record["config_sha256"] = legacy_config_sha256
    rewrite(sidecar, json.dumps(record, indent=2, sort_keys=True).encode())


def test_members_of_the_previous_release_stay_valid(run_copy: Path) -> None:
    """Upgrading retrains nothing: members whose sidecars the previous release wrote are current."""
    legacy = legacy_member_config_sha256(load_config(run_copy / "params.yaml"))
    for member in TINY_MEMBERS:
        _as_previous_release(sidecar_path(run_copy / "outputs" / "members" / member / "weights.safetensors"), legacy)
    code, message = invoke("train-members", "--no-dvc")
    assert code == 0 and "trained 0 member(s); 6 already up to date" in message, message
    code, message = invoke("merge")
    assert code == 0, message
    soup = json.loads(sidecar_path(run_copy / SOUP).read_text())
    assert soup["sidecar_version"] == 2 and sorted(soup["members_sha256"]) == sorted(TINY_MEMBERS)
