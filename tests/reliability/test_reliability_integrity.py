"""Checkpoint integrity: every checkpoint records what produced it, and every stage verifies what it reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tiny_config import TINY_MEMBERS
from tiny_run import clone_run, rewrite, snapshot, tree_changes
from typer.testing import CliRunner

from ltsoups.checkpoint import sidecar_path
from ltsoups.cli.app import app

runner = CliRunner()

THETA0 = "outputs/theta0/theta0.safetensors"
SOUP = "outputs/soup/soup.safetensors"
RUNNING = ("outputs/soup/running/upto-f1.safetensors", "outputs/soup/running/upto-f2.safetensors")
FINAL = "outputs/final/final.safetensors"
MEMBER_FILES = tuple(f"outputs/members/{m}/weights.safetensors" for m in TINY_MEMBERS)
LOGITS = ("outputs/eval/predictions/test/final.safetensors", "outputs/eval/predictions/val/final.safetensors")
"""The final model's saved logits: no stage reads them (`ltsoups compare report` verifies them the same way)."""

READS = {
    ("train-member", "f1-r0"): (THETA0,),
    ("merge",): (THETA0, *MEMBER_FILES),
    ("merge", "--set", "merge.merger={name: greedy}"): (THETA0, *MEMBER_FILES),  # hashed as the first soup is scored
    ("retrain-head",): (SOUP,),
    ("evaluate",): (THETA0, *RUNNING, SOUP, FINAL),
}
"""Every checkpoint each command reads: altering any one of them must stop the command."""

CASES = [(command, path) for command, paths in READS.items() for path in paths]


@pytest.mark.parametrize(("command", "relative"), CASES, ids=[f"{' '.join(c)}: {p}" for c, p in CASES])
def test_every_checkpoint_a_stage_reads_is_verified_first(
    command: tuple[str, ...], relative: str, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = clone_run(finished_run, tmp_path / "run")
    data = bytearray((root / relative).read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit, inside the tensor data: the file still parses
    rewrite(root / relative, bytes(data))
    monkeypatch.chdir(root)
    before = snapshot(root)
    result = runner.invoke(app, list(command), env={"COLUMNS": "400"})
    message = " ".join(result.output.split())
    assert result.exit_code == 1, message
    assert f"{relative}: sha256" in message and "does not match its sidecar" in message, message
    assert tree_changes(before, snapshot(root)) == []


def test_the_table_names_every_checkpoint_of_a_run(finished_run: Path) -> None:
    on_disk = {str(p.relative_to(finished_run)) for p in finished_run.rglob("*.safetensors")}
    read = {path for paths in READS.values() for path in paths}
    assert on_disk == read | set(LOGITS)


def test_every_sidecar_records_hashes_and_the_code_version(finished_run: Path) -> None:
    plan = json.loads((finished_run / "outputs" / "plan" / "plan.json").read_text())
    manifests = {entry["member"]: entry["manifest_sha256"] for entry in plan["members"]}
    checkpoints = sorted(finished_run.rglob("*.safetensors"))
    assert len(checkpoints) == 1 + len(TINY_MEMBERS) + len(RUNNING) + 2 + len(LOGITS)
    theta0 = json.loads(sidecar_path(finished_run / THETA0).read_text())["weights_sha256"]
    for path in checkpoints:
        sidecar = json.loads(sidecar_path(path).read_text())
        assert sidecar["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), path
        assert sidecar["config_sha256"] and sidecar["code_version"], path
        if sidecar["kind"] == "member":
            assert sidecar["manifest_sha256"] == manifests[sidecar["member"]]
            assert sidecar["theta0_sha256"] == theta0
