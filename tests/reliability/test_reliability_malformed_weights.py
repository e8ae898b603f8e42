"""Malformed weights files through the CLI: every command that reads weights names the file, exits 1, writes nothing.

Each file is a real one of the run whose first bytes still look right (a length that fits, then "{"),
with its header broken; checkpoints get a sidecar whose sha256 matches, so only the parser stands
in the way. The parser's own table is tests/io/test_io_safetensors.py.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tiny_run import clone_run, rewrite, snapshot, tree_changes
from typer.testing import CliRunner

from ltsoups.checkpoint import sidecar_path
from ltsoups.cli.app import app

runner = CliRunner()

THETA0 = "outputs/theta0/theta0.safetensors"
MEMBER = "outputs/members/f2-r1/weights.safetensors"
SOUP = "outputs/soup/soup.safetensors"
RUNNING = "outputs/soup/running/upto-f1.safetensors"
FINAL = "outputs/final/final.safetensors"
MEMBER_RESUME = "outputs/members/f1-r0/resume-step2.safetensors"
HEAD_RESUME = "outputs/final/resume-step2.safetensors"
BACKBONE = "backbone.safetensors"
TIMM = {"name": "timm", "params": {"model": "vit_tiny_patch16_224.augreg_in21k", "image_size": 32}}


def _split(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _not_utf8(data: bytes) -> bytes:
    """The first tensor name gets a byte that is never UTF-8; the length still fits and "{" still opens."""
    broken = bytearray(data)
    broken[10] = 0xFF
    return bytes(broken)


def _a_trillion_elements(data: bytes) -> bytes:
    """The first tensor claims 10^12 float32 elements (4 TB) and offsets to match, past the end of the file."""
    header, body = _split(data)
    entry = header[min(name for name in header if name != "__metadata__")]
    entry["shape"] = [10**6, 10**6]
    entry["data_offsets"][1] = entry["data_offsets"][0] + 4 * 10**12
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + body


MALFORMATIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "header not UTF-8": (_not_utf8, "header is not UTF-8"),
    "a trillion elements": (_a_trillion_elements, "run past the end of the data"),
}


def _sidecar_for(path: Path, kind: str, **fields: object) -> None:
    sidecar = {"kind": kind, **fields, "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    side = sidecar_path(path)
    side.unlink(missing_ok=True)  # a hard link to the template's: replace it, never edit it
    side.write_text(json.dumps(sidecar))


def _checkpoint(relative: str) -> Callable[[Path, Callable[[bytes], bytes]], None]:
    """Break a checkpoint of the run in place, keeping its sidecar's fields."""

    def plant(root: Path, malform: Callable[[bytes], bytes]) -> None:
        path = root / relative
        sidecar = json.loads(sidecar_path(path).read_text())
        rewrite(path, malform(path.read_bytes()))
        _sidecar_for(path, **sidecar)

    return plant


def _resume_state(relative: str) -> Callable[[Path, Callable[[bytes], bytes]], None]:
    """A committed resume state (weights and sidecar) beside the stage's output, its header broken."""

    def plant(root: Path, malform: Callable[[bytes], bytes]) -> None:
        path = root / relative
        path.write_bytes(malform((root / MEMBER).read_bytes()))
        _sidecar_for(path, "resume-state", step=2, ema_updates=2, best_score=None, fingerprint="")

    return plant


def _backbone_file(backbone: dict | None = None) -> Callable[[Path, Callable[[bytes], bytes]], None]:
    """The backbone's `pretrained` is a local file (no sidecar): the run's mini-CLIP, its header broken."""

    def plant(root: Path, malform: Callable[[bytes], bytes]) -> None:
        params = yaml.safe_load((root / "params.yaml").read_text())
        source = Path(params["backbone"]["params"]["pretrained"])
        (root / BACKBONE).write_bytes(malform(source.read_bytes()))
        chosen = json.loads(json.dumps(backbone or params["backbone"]))
        chosen["params"]["pretrained"] = BACKBONE
        params["backbone"] = chosen
        rewrite(root / "params.yaml", yaml.safe_dump(params, sort_keys=False).encode())

    return plant


@dataclass(frozen=True)
class WeightsRead:
    """A command, and the weights file it reads that is planted broken."""

    name: str
    command: tuple[str, ...]
    file: str
    plant: Callable[[Path, Callable[[bytes], bytes]], None]


TRAIN = ("train-member", "f1-r0")
READS = [
    WeightsRead("open-clip backbone file", ("theta0",), BACKBONE, _backbone_file()),
    WeightsRead("timm backbone file", ("theta0",), BACKBONE, _backbone_file(TIMM)),
    WeightsRead("theta0 in train-member", TRAIN, THETA0, _checkpoint(THETA0)),
    WeightsRead("member resume state", TRAIN, MEMBER_RESUME, _resume_state(MEMBER_RESUME)),
    WeightsRead("theta0 in merge", ("merge",), THETA0, _checkpoint(THETA0)),
    WeightsRead("member in merge", ("merge",), MEMBER, _checkpoint(MEMBER)),
    WeightsRead("soup in retrain-head", ("retrain-head",), SOUP, _checkpoint(SOUP)),
    WeightsRead("retrain-head resume state", ("retrain-head",), HEAD_RESUME, _resume_state(HEAD_RESUME)),
    WeightsRead("running soup in evaluate", ("evaluate",), RUNNING, _checkpoint(RUNNING)),
    WeightsRead("final in evaluate", ("evaluate",), FINAL, _checkpoint(FINAL)),
]
CASES = [(read, kind) for read in READS for kind in MALFORMATIONS]


def _refused(root: Path, command: tuple[str, ...], file: str, expect: str) -> None:
    """Run ``command`` in ``root``: exit 1, the error on stderr names ``file``, and nothing on disk changes."""
    before = snapshot(root)
    result = runner.invoke(app, list(command), env={"COLUMNS": "400"})
    stderr = " ".join(result.stderr.split())
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), f"escaped as {result.exception!r}"
    assert "Traceback" not in result.output
    assert f"error: {file}: " in stderr and expect in stderr, stderr
    assert tree_changes(before, snapshot(root)) == []


@pytest.mark.parametrize(("read", "kind"), CASES, ids=[f"{read.name}: {kind}" for read, kind in CASES])
def test_a_malformed_weights_file_is_refused_by_name(
    read: WeightsRead, kind: str, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = clone_run(finished_run, tmp_path / "run")
    malform, expect = MALFORMATIONS[kind]
    read.plant(root, malform)
    monkeypatch.chdir(root)
    _refused(root, read.command, read.file, expect)


def test_every_kind_of_checkpoint_a_run_writes_has_a_case(finished_run: Path) -> None:
    def kind(path: Path) -> str:
        return json.loads(sidecar_path(path).read_text())["kind"]

    written = {kind(path) for path in finished_run.rglob("*.safetensors")}
    planted = {kind(finished_run / read.file) for read in READS if (finished_run / read.file).is_file()}
    # Saved logits are read by `ltsoups compare report` only: tests/compare has their case.
    assert planted == written - {"predictions"}


COUNTS = {
    "not UTF-8": (bytes(range(128, 256)), "counts.bin: class counts must be a JSON text file (byte 0 is not UTF-8)"),
    "not JSON": (b"\x00\x01 counts", "counts.bin: class counts are not valid JSON"),
}


@pytest.mark.parametrize("kind", sorted(COUNTS))
def test_plan_refuses_binary_class_counts_by_name(
    kind: str, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = clone_run(finished_run, tmp_path / "run")
    content, expect = COUNTS[kind]
    (root / "counts.bin").write_bytes(content)
    monkeypatch.chdir(root)
    _refused(root, ("plan", "--counts", "counts.bin"), "counts.bin", expect)
