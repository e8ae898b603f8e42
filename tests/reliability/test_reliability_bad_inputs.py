"""Bad input through the CLI: a clear message, a non-zero exit, and no output written.

Each case's message must name the field or file and what was expected; the case's whole folder is
compared before and after, so an output created, changed or removed (or a temporary left) fails it.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file
from tiny_config import tiny_params, write_params
from tiny_run import clone_run, rewrite, snapshot, tree_changes
from typer.testing import CliRunner

from ltsoups.checkpoint import save_checkpoint, sidecar_path
from ltsoups.cli.app import app
from ltsoups.config import load_config
from ltsoups.provenance import hash_json
from ltsoups.stages.context import RunContext
from ltsoups.stages.merge import merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.workspace import Workspace

runner = CliRunner()
Params = dict[str, Any]


@dataclass(frozen=True)
class BadInput:
    """One bad input: how to make it, the command that meets it, and what that command must say."""

    name: str
    command: tuple[str, ...]
    expect: tuple[str, ...]
    code: int = 1
    on_run: bool = False
    """Start from a finished run (plan, members, soup, final, metrics) rather than from params alone."""
    params: Callable[[Params], None] | None = None
    params_text: str | None = None
    breaks: Callable[[Path], None] | None = None
    fault: Callable[[pytest.MonkeyPatch], None] | None = None
    trains: bool = False
    """The command (or the breaking of the run) trains or merges before it meets the bad input: a slow case."""


def _set(location: str, value: Any) -> Callable[[Params], None]:
    def edit(params: Params) -> None:
        *parents, leaf = location.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return edit


# ---------------------------------------------------------------------------------- list-file data


def _list_file_dataset(
    train: list[int], val: list[int] | None = None, test: list[int] | None = None, names: list[str] | None = None
) -> Callable[[Params], None]:
    """Use the list-file plugin on files ``_write_list_files`` creates from the same arguments."""

    def edit(params: Params) -> None:
        dataset: Params = {
            "root": "images",
            "lists": {"train": "lists/train.txt", "val": "lists/val.txt", "test": "lists/test.txt"},
        }
        if names is not None:
            dataset["class_names"] = "lists/classnames.txt"
        params["data"] = {"dataset": {"name": "list-file", "params": dataset}}
        params["_lists"] = {"train": train, "val": val or [0, 1, 2], "test": test or [0, 1, 2], "names": names}

    return edit


def _write_list_files(case: Path, spec: Params) -> None:
    for split in ("train", "val", "test"):
        lines = []
        for i, label in enumerate(spec[split]):
            relative = f"{split}/{i}.png"
            (case / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * (label % 6), 0, 0)).save(case / "images" / relative)
            lines.append(f"{relative} {label}\n")
        (case / "lists").mkdir(exist_ok=True)
        (case / "lists" / f"{split}.txt").write_text("".join(lines))
    if spec["names"] is not None:
        (case / "lists" / "classnames.txt").write_text("".join(f"{n}\n" for n in spec["names"]))


# ------------------------------------------------------------------------------------ file damage


def _truncate(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / relative
        rewrite(path, path.read_bytes()[: path.stat().st_size // 2])

    return damage


def _flip_byte(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / relative
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF
        rewrite(path, bytes(data))

    return damage


def _remove(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / relative).unlink()

    return damage


def _torch_pickle(relative: str) -> Callable[[Path], None]:
    """Replace a checkpoint by what torch.save writes (a pickle in a zip), keeping the name."""

    def damage(root: Path) -> None:
        path = root / relative
        tensors = load_file(str(path))
        path.unlink()
        torch.save(tensors, path)

    return damage


def _resave_member(member: str, change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    """Rewrite a member with a changed tensor layout and a fresh, valid sidecar (only the layout is wrong)."""

    def damage(root: Path) -> None:
        path = root / "outputs" / "members" / member / "weights.safetensors"
        sidecar = json.loads(sidecar_path(path).read_text())
        tensors = load_file(str(path))
        change(tensors)
        for stale in (path, sidecar_path(path)):
            stale.unlink()
        derived = {"kind", "weights_sha256", "num_tensors", "num_parameters", "code_version", "sidecar_version"}
        keep = {k: v for k, v in sidecar.items() if k not in derived}
        save_checkpoint(path, tensors, kind="member", **keep)

    return damage


def _widen_head(tensors: dict[str, torch.Tensor]) -> None:
    tensors["head.weight"] = torch.cat([tensors["head.weight"], tensors["head.weight"][:1]])


def _half_precision(tensors: dict[str, torch.Tensor]) -> None:
    tensors["head.weight"] = tensors["head.weight"].half()


def _edit_manifest(member: str, rehash: bool, change: Callable[[Params], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / "outputs" / "plan" / "manifests" / f"{member}.json"
        manifest = json.loads(path.read_text())
        change(manifest)
        if rehash:  # and listed in the plan, so that only the manifest's own checks stand in the way
            manifest["content_sha256"] = _content_sha256(manifest)
            plan_path = root / "outputs" / "plan" / "plan.json"
            plan = json.loads(plan_path.read_text())
            next(m for m in plan["members"] if m["member"] == member)["manifest_sha256"] = manifest["content_sha256"]
            plan["content_sha256"] = _content_sha256(plan)
            rewrite(plan_path, json.dumps(plan).encode())
        rewrite(path, json.dumps(manifest).encode())

    return damage


def _content_sha256(record: Params) -> str:
    return hash_json({k: v for k, v in record.items() if k != "content_sha256"})


def _index_beyond_dataset(manifest: Params) -> None:
    manifest["indices"][-1] = 10_000


def _index_duplicated(manifest: Params) -> None:
    manifest["indices"][1] = manifest["indices"][0]


def _replan_with_seed(seed: int) -> Callable[[Path], None]:
    """Draw the plan again with another seed: the members on disk now come from other manifests."""

    def damage(root: Path) -> None:
        for path in (root / "outputs" / "plan").rglob("*.json"):
            path.unlink()
        (root / "outputs" / "data" / "counts.json").unlink()
        config = load_config(root / "params.yaml", [f"seed={seed}", f"workdir={root / 'outputs'}"])
        prepare(RunContext(config), Workspace(root / "outputs"))

    return damage


def _merge_again(root: Path) -> None:
    """Merge again with the params as they are now, leaving the final checkpoint of the old soup."""
    config = load_config(root / "params.yaml", [f"workdir={root / 'outputs'}"])
    merge_members(RunContext(config), Workspace(root / "outputs"))


def _foreign_resume_state(root: Path) -> None:
    target = root / "outputs" / "members" / "f1-r0" / "resume-step2.safetensors"
    save_checkpoint(
        target,
        {"model.x": torch.zeros(1)},
        kind="resume-state",
        step=2,
        ema_updates=3,
        best_score=None,
        fingerprint="another-config",
    )


def _write_text(relative: str, text: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / relative).write_text(text)

    return damage


def _backbone_file(name: str) -> Callable[[Params], None]:
    return _set("backbone.params.pretrained", name)


def _write_pickle(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        torch.save({"visual.proj": torch.zeros(2, 2)}, root / relative)

    return damage


def _wrong_architecture_backbone(root: Path) -> None:
    save_file({"visual.proj": torch.zeros(3, 3)}, str(root / "other-model.safetensors"))


# ----------------------------------------------------------------------------------------- faults


def _disk_full_at_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk as delayed allocation reports it: the bytes seemed written, flushing them fails."""

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _disk_full_in_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk for text files: half the text is written, then ENOSPC."""
    real_write_text = Path.write_text

    def write_text_on_full_disk(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", write_text_on_full_disk)


def _permission_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a file in the output folder fails as it does in a folder we may not write to."""

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


# ------------------------------------------------------------------------------------------ table

MEMBER = ("outputs/members/f2-r1/weights.safetensors",)
TRAIN = ("train-member", "f1-r0")
LOSSES = "class-balanced, cross-entropy, logit-adjusted"

CASES = [
    # params.yaml and --set
    BadInput(
        "yaml syntax",
        ("prepare",),
        ("params.yaml: malformed YAML: line 3, column 1: expected ',' or '}'", "started at line 2"),
        2,
        params_text="seed: 0\ntrain: {optim: {lr: 0.1}\n",
    ),
    BadInput(
        "yaml not a mapping",
        ("prepare",),
        ("params.yaml", "the top level must be a mapping"),
        2,
        params_text="- seed\n- 0\n",
    ),
    BadInput(
        "yaml an empty list",
        ("prepare",),
        ("params.yaml: [] is not allowed: the top level must be a mapping",),
        2,
        params_text="[]\n",
    ),
    BadInput(
        "plugin params not a mapping",
        ("prepare",),
        ("plan.sampler.params: 0 is not allowed", "valid dictionary"),
        2,
        params=_set("plan.sampler", {"name": "progressive", "params": 0}),
    ),
    BadInput(
        "prompt template without the class name",
        ("prepare",),
        ("head.templates: ['a photo of a {name}.'] is not allowed", "needs exactly one {} where the class name goes"),
        2,
        params=_set("head.templates", ["a photo of a {name}."]),
    ),
    BadInput(
        "empty tracking uri",
        ("prepare",),
        ("tracking.uri: '' is not allowed", "at least 1 character"),
        2,
        params=_set("tracking.uri", ""),
    ),
    BadInput(
        "wrong type",
        ("prepare",),
        ("train.optim.batch_size: 'many'", "valid integer"),
        2,
        params=_set("train.optim.batch_size", "many"),
    ),
    BadInput("wrong type for a section", ("prepare",), ("head: 5", "valid dictionary"), 2, params=_set("head", 5)),
    BadInput(
        "unknown top-level key", ("prepare",), ("seeds: 3 is not allowed: unknown key",), 2, params=_set("seeds", 3)
    ),
    BadInput(
        "unknown nested key",
        ("prepare",),
        ("train.optim.learning_rate: 0.1 is not allowed: unknown key",),
        2,
        params=_set("train.optim.learning_rate", 0.1),
    ),
    BadInput(
        "lambda above 1",
        ("prepare",),
        ("merge.merger.params.lambda: 1.5", "less than or equal to 1"),
        2,
        params=_set("merge.merger", {"name": "recursive", "params": {"lambda": 1.5}}),
    ),
    BadInput(
        "lambda below 0",
        ("prepare",),
        ("merge.merger.params.lambda: -0.1", "greater than or equal to 0"),
        2,
        params=_set("merge.merger", {"name": "recursive", "params": {"lambda": -0.1}}),
    ),
    BadInput(
        "negative N",
        ("prepare",),
        ("plan.sampler.params.rounds: -1", "greater than or equal to 0"),
        2,
        params=_set("plan.sampler.params.rounds", -1),
    ),
    BadInput(
        "M below 1",
        ("prepare",),
        ("plan.sampler.params.replicas: 0", "greater than or equal to 1"),
        2,
        params=_set("plan.sampler.params.replicas", 0),
    ),
    BadInput(
        "empty merger name",
        ("prepare",),
        ("merge.merger.name: ''", "at least 1 character"),
        2,
        params=_set("merge.merger", {"name": ""}),
    ),
    BadInput(
        "empty dataset name",
        ("prepare",),
        ("data.dataset.name: ''", "at least 1 character"),
        2,
        params=_set("data.dataset", {"name": ""}),
    ),
    BadInput(
        "unknown loss",
        ("prepare",),
        ("train.loss.name: 'focal'", f"unknown loss 'focal'; installed: {LOSSES}"),
        2,
        params=_set("train.loss", {"name": "focal"}),
    ),
    BadInput(
        "unknown backbone",
        ("prepare",),
        ("backbone.name: 'vit-huge'", "unknown backbone", "open-clip"),
        2,
        params=_set("backbone", {"name": "vit-huge"}),
    ),
    BadInput(
        "unknown plugin param",
        ("prepare",),
        ("merge.merger.params.lamda: 0.5 is not allowed: unknown key",),
        2,
        params=_set("merge.merger", {"name": "recursive", "params": {"lamda": 0.5}}),
    ),
    BadInput(
        "EMA decay of 1",
        ("prepare",),
        ("train.ema.decay: 1.0", "less than 1"),
        2,
        params=_set("train.ema.decay", 1.0),
    ),
    BadInput(
        "inverted crop scale",
        ("prepare",),
        ("- train.augment: crop_scale must satisfy 0 < low <= high <= 1, got (0.9, 0.5)",),
        2,
        params=_set("train.augment.crop_scale", [0.9, 0.5]),
    ),
    BadInput(
        "one class (embedded)",
        ("prepare",),
        ("data.dataset.params.num_classes: 1", "greater than or equal to 2"),
        2,
        params=_set("data.dataset.params.num_classes", 1),
    ),
    BadInput(
        "unknown preset",
        ("prepare",),
        ("preset: 'imagenet-xl'", "unknown preset; available:"),
        2,
        params=_set("preset", "imagenet-xl"),
    ),
    BadInput(
        "missing params file",
        ("prepare", "--params", "nope.yaml"),
        ("nope.yaml: cannot read file (No such file or directory)",),
        2,
    ),
    BadInput("--set without =", ("prepare", "--set", "merge.merger.params.lambda"), ("--set", "expected KEY=VALUE"), 2),
    BadInput(
        "--set with malformed YAML",
        ("prepare", "--set", "train.optim.betas=[0.9,"),
        ("--set: 'train.optim.betas=[0.9,'", "the value is malformed YAML"),
        2,
    ),
    BadInput(
        "--set out of range",
        ("prepare", "--set", "merge.merger.params.lambda=2"),
        ("merge.merger.params.lambda: 2", "less than or equal to 1"),
        2,
    ),
    # datasets (list-file plugin)
    BadInput(
        "empty class",
        ("prepare",),
        ("lists/train.txt", "no training samples for class(es) 1 (class_1)"),
        params=_list_file_dataset(train=[0, 0, 2, 2]),
    ),
    BadInput(
        "single class",
        ("prepare",),
        ("lists/train.txt", "needs at least 2 classes, found 1"),
        params=_list_file_dataset(train=[0, 0, 0], val=[0], test=[0]),
    ),
    BadInput(
        "train label out of range",
        ("prepare",),
        ("lists/train.txt:3", "label 3 is out of range", "lists/classnames.txt has 3 names"),
        params=_list_file_dataset(train=[0, 1, 3, 2], names=["cat", "dog", "fox"]),
    ),
    BadInput(
        "test label out of range",
        ("prepare",),
        ("lists/test.txt:2", "label 7 is out of range", "0..2"),
        params=_list_file_dataset(train=[0, 1, 2], test=[0, 7, 2]),
    ),
    BadInput(
        "negative label",
        ("prepare",),
        ("lists/val.txt:1", "label -1 is negative"),
        params=_list_file_dataset(train=[0, 1, 2], val=[-1, 1, 2]),
    ),
    BadInput(
        "class-name file too long",
        ("prepare",),
        ("lists/classnames.txt has 4 names", "only uses labels 0..2", "must name exactly the classes"),
        params=_list_file_dataset(train=[0, 1, 2], names=["cat", "dog", "fox", "owl"]),
    ),
    BadInput(
        "class-name file too short",
        ("prepare",),
        ("lists/train.txt:3", "label 2 is out of range", "lists/classnames.txt has 2 names (labels 0..1)"),
        params=_list_file_dataset(train=[0, 1, 2], names=["cat", "dog"]),
    ),
    BadInput(
        "image missing",
        ("prepare",),
        ("lists/train.txt:1", "images/train/0.png not found", "image root"),
        params=_list_file_dataset(train=[0, 1, 2]),
        breaks=_remove("images/train/0.png"),
    ),
    BadInput(
        "CIFAR files missing",
        ("prepare",),
        ("nowhere/cifar-100-python", "not found", "download: true"),
        params=_set("data.dataset", {"name": "cifar100-lt", "params": {"root": "nowhere"}}),
    ),
    BadInput(
        "class counts with an empty class",
        ("plan", "--counts", "counts.json"),
        ("counts.json: class 1 has no samples",),
        breaks=_write_text("counts.json", "[10, 0, 3]"),
    ),
    BadInput(
        "class counts not a list",
        ("plan", "--counts", "counts.json"),
        ("counts.json: class counts must be a non-empty JSON list of non-negative integers",),
        breaks=_write_text("counts.json", '{"cat": 10}'),
    ),
    # manifests and the plan
    BadInput(
        "manifest edited by hand",
        TRAIN,
        ("outputs/plan/manifests/f1-r0.json", "does not match its content_sha256"),
        on_run=True,
        breaks=_edit_manifest("f1-r0", rehash=False, change=_index_beyond_dataset),
    ),
    BadInput(
        "manifest pointing to samples that do not exist",
        TRAIN,
        ("outputs/plan/manifests/f1-r0.json", "index 10000", "106 samples"),
        on_run=True,
        breaks=_edit_manifest("f1-r0", rehash=True, change=_index_beyond_dataset),
    ),
    BadInput(
        "manifest listing a sample twice",
        TRAIN,
        ("outputs/plan/manifests/f1-r0.json", "twice"),
        on_run=True,
        breaks=_edit_manifest("f1-r0", rehash=True, change=_index_duplicated),
    ),
    BadInput(
        "member not in the plan",
        ("train-member", "f8-r0"),
        ("f8-r0", "not in the plan", "f1-r0, f1-r1, f2-r0, f2-r1, f4-r0, f4-r1"),
        on_run=True,
    ),
    BadInput(
        "manifest from another dataset",
        TRAIN,
        ("outputs/plan/manifests/f1-r0.json", "another dataset"),
        on_run=True,
        params=_set("data.dataset.params.n_max", 50),
    ),
    BadInput(
        "theta0 from another config",
        TRAIN,
        ("outputs/theta0/theta0.safetensors", "another data/backbone/head config", "`ltsoups theta0`"),
        on_run=True,
        params=_set("head", {"scale": 20.0}),
    ),
    BadInput(
        "resume state of another config",
        TRAIN,
        ("outputs/members/f1-r0/resume-step2.safetensors", "different configuration or manifest"),
        on_run=True,
        breaks=_foreign_resume_state,
    ),
    # training that diverges
    BadInput(
        "NaN loss in a member",
        (*TRAIN, "--set", "train.optim.lr=1e30", "--set", "train.resume_every=1"),
        ("member f1-r0: loss is nan at step 2 of 3",),
        on_run=True,
        trains=True,
    ),
    BadInput(
        "NaN loss in head retraining",
        ("retrain-head", "--set", "retrain_head.optim.lr=1e30", "--set", "retrain_head.resume_every=1"),
        ("retrain-head: weight 'weight' holds NaN or infinite values at step", "retrain_head.optim.lr = 1e+30"),
        on_run=True,
        trains=True,
    ),
    # where outputs go
    BadInput(
        "output folder under a file",
        ("prepare", "--set", "workdir=params.yaml/outputs"),
        ("cannot write params.yaml/outputs/", "params.yaml is a file, where a folder belongs"),
        on_run=True,
    ),
    BadInput(
        "output folder not writable",
        ("theta0",),
        ("cannot write outputs/theta0/theta0.safetensors", "Permission denied"),
        on_run=True,
        fault=_permission_denied,
    ),
    BadInput(
        "disk full writing a checkpoint",
        ("theta0",),
        ("cannot write outputs/theta0/theta0.safetensors", "No space left on device"),
        on_run=True,
        fault=_disk_full_at_flush,
    ),
    BadInput(
        "disk full writing a resume state",
        TRAIN,
        ("cannot write outputs/members/f1-r0/resume-step2.safetensors", "No space left on device"),
        on_run=True,
        fault=_disk_full_at_flush,
        trains=True,
    ),
    BadInput(
        "disk full writing the plan",
        ("prepare",),
        ("cannot write outputs/", "No space left on device"),
        on_run=True,
        fault=_disk_full_in_text,
    ),
    # checkpoints given to merge, retrain-head and evaluate
    BadInput(
        "missing member in merge", ("merge",), ("checkpoint not found", *MEMBER), on_run=True, breaks=_remove(MEMBER[0])
    ),
    BadInput(
        "member of another architecture in merge",
        ("merge",),
        (*MEMBER, "tensor 'head.weight' has shape [7,", "expected [6,"),
        on_run=True,
        breaks=_resave_member("f2-r1", _widen_head),
    ),
    BadInput(
        "member of another dtype in merge",
        ("merge",),
        (*MEMBER, "tensor 'head.weight' has dtype F16, expected F32"),
        on_run=True,
        breaks=_resave_member("f2-r1", _half_precision),
    ),
    BadInput(
        "truncated member in merge",
        ("merge",),
        (*MEMBER, "does not match its sidecar", "truncated or was altered"),
        on_run=True,
        breaks=_truncate(MEMBER[0]),
    ),
    BadInput(
        "altered member in merge",
        ("merge",),
        (*MEMBER, "does not match its sidecar"),
        on_run=True,
        breaks=_flip_byte(MEMBER[0]),
    ),
    BadInput(
        "member without sidecar in merge",
        ("merge",),
        (*MEMBER, "sidecar weights.safetensors.json is missing"),
        on_run=True,
        breaks=_remove(MEMBER[0] + ".json"),
    ),
    BadInput(
        "pickle member in merge",
        ("merge",),
        (*MEMBER, "not a safetensors file"),
        on_run=True,
        breaks=_torch_pickle(MEMBER[0]),
    ),
    BadInput(
        "member from another manifest in merge",
        ("merge", "--set", "seed=1"),
        ("outputs/members/f1-r0/weights.safetensors", "trained from manifest", "`ltsoups train-member f1-r0`"),
        on_run=True,
        breaks=_replan_with_seed(1),
    ),
    BadInput(
        "member from another train config in merge",
        ("merge", "--set", "train.optim.lr=0.001"),
        ("outputs/members/f1-r0/weights.safetensors", "another data/backbone/head/train config"),
        on_run=True,
    ),
    BadInput(
        "truncated theta0 in merge",
        ("merge",),
        ("outputs/theta0/theta0.safetensors", "does not match its sidecar"),
        on_run=True,
        breaks=_truncate("outputs/theta0/theta0.safetensors"),
    ),
    BadInput(
        "altered soup in retrain-head",
        ("retrain-head",),
        ("outputs/soup/soup.safetensors", "does not match its sidecar"),
        on_run=True,
        breaks=_flip_byte("outputs/soup/soup.safetensors"),
    ),
    BadInput(
        "missing soup in retrain-head",
        ("retrain-head",),
        ("checkpoint not found: outputs/soup/soup.safetensors",),
        on_run=True,
        breaks=_remove("outputs/soup/soup.safetensors"),
    ),
    BadInput(
        "soup of another merge config in retrain-head",
        ("retrain-head", "--set", "merge.merger.params.lambda=0.5"),
        ("outputs/soup/soup.safetensors: merged with another config", "`ltsoups merge`"),
        on_run=True,
    ),
    BadInput(
        "final of another soup in evaluate",
        ("evaluate",),
        ("outputs/final/final.safetensors: made from another soup", "`ltsoups retrain-head`"),
        on_run=True,
        params=_set("merge.merger", {"name": "recursive", "params": {"lambda": 0.5}}),
        breaks=_merge_again,
        trains=True,
    ),
    BadInput(
        "truncated final in evaluate",
        ("evaluate",),
        ("outputs/final/final.safetensors", "does not match its sidecar"),
        on_run=True,
        breaks=_truncate("outputs/final/final.safetensors"),
    ),
    BadInput(
        "pickle final in evaluate",
        ("evaluate",),
        ("outputs/final/final.safetensors", "not a safetensors file"),
        on_run=True,
        breaks=_torch_pickle("outputs/final/final.safetensors"),
    ),
    BadInput(
        "missing running soup in evaluate",
        ("evaluate",),
        ("checkpoint not found: outputs/soup/running/upto-f1.safetensors",),
        on_run=True,
        breaks=_remove("outputs/soup/running/upto-f1.safetensors"),
    ),
    # backbone weights
    BadInput(
        "pickle backbone (.pt)",
        ("theta0",),
        ("backbone.pt", ".pt files are pickles, which ltsoups never loads"),
        on_run=True,
        params=_backbone_file("backbone.pt"),
        breaks=_write_pickle("backbone.pt"),
    ),
    BadInput(
        "pickle backbone named .safetensors",
        ("theta0",),
        ("fake.safetensors", "not a safetensors file"),
        on_run=True,
        params=_backbone_file("fake.safetensors"),
        breaks=_write_pickle("fake.safetensors"),
    ),
    BadInput(
        "missing backbone file",
        ("theta0",),
        ("checkpoint not found: gone.safetensors",),
        on_run=True,
        params=_backbone_file("gone.safetensors"),
    ),
    BadInput(
        "backbone of another architecture",
        ("theta0",),
        ("other-model.safetensors", "not weights of open_clip model 'ltsoups-mini'", "is missing"),
        on_run=True,
        params=_backbone_file("other-model.safetensors"),
        breaks=_wrong_architecture_backbone,
    ),
]


def _prepare_case(case: BadInput, root: Path, finished_run: Path, random_mini_clip: Path) -> Path:
    if case.on_run:
        clone_run(finished_run, root)
        params = yaml.safe_load((root / "params.yaml").read_text())
    else:
        root.mkdir()
        params = tiny_params(random_mini_clip)
    if case.params is not None:
        case.params(params)
    lists = params.pop("_lists", None)
    if lists is not None:
        _write_list_files(root, lists)
    (root / "params.yaml").unlink(missing_ok=True)
    if case.params_text is not None:
        (root / "params.yaml").write_text(case.params_text)
    else:
        write_params(root, params)
    if case.breaks is not None:
        case.breaks(root)
    return root


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.name, marks=[pytest.mark.slow] if case.trains else []) for case in CASES]
)
def test_bad_input_is_refused_with_a_clear_message_and_leaves_no_trace(
    case: BadInput, tmp_path: Path, finished_run: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _prepare_case(case, tmp_path / "case", finished_run, random_mini_clip)
    monkeypatch.chdir(root)
    before = snapshot(root)
    with monkeypatch.context() as patched:
        if case.fault is not None:
            case.fault(patched)
        result = runner.invoke(app, list(case.command), env={"COLUMNS": "400"})
    message = " ".join(result.output.split())
    print(f"{case.name} -> exit {result.exit_code}: {message}")  # shown when a case fails
    assert result.exit_code == case.code, f"exit {result.exit_code}: {result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), message
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert tree_changes(before, snapshot(root)) == []


def test_the_table_covers_at_least_thirty_bad_inputs() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


def test_validate_reports_every_error_at_once(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tiny_params(random_mini_clip, seeds=1)
    for edit in (
        _set("merge.merger", {"name": "recursive", "params": {"lambda": 1.5}}),
        _set("plan.sampler.params.rounds", -1),
        _set("plan.sampler.params.replicas", 0),
        _set("train.loss", {"name": "focal"}),
        _set("retrain_head.loss", {"name": ""}),
        _set("train.optim.batch_size", "many"),
    ):
        edit(params)
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["validate"], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "7 problem(s) in params.yaml" in message
    for location in (
        "seeds",
        "merge.merger.params.lambda",
        "plan.sampler.params.rounds",
        "plan.sampler.params.replicas",
        "train.loss.name",
        "retrain_head.loss.name",
        "train.optim.batch_size",
    ):
        assert f"- {location}:" in message
    assert tree_changes(before, snapshot(tmp_path)) == []


def test_validate_accepts_the_tiny_config(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_params(tmp_path, tiny_params(random_mini_clip))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "params.yaml is valid" in result.output


# --------------------------------------------------------------------------- real kernels, real processes


def _run_cli(root: Path, *args: str, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "ltsoups", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )


@pytest.mark.slow
def test_a_write_the_kernel_cuts_short_leaves_nothing(finished_run: Path, tmp_path: Path) -> None:
    """The kernel refuses bytes past a file-size limit mid-write, as a full disk does: no partial file remains."""
    root = clone_run(finished_run, tmp_path / "run")
    before = snapshot(root)
    size = (root / "outputs" / "theta0" / "theta0.safetensors").stat().st_size
    result = _run_cli(root, "theta0", limit_file_bytes=size // 2)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot write outputs/theta0/theta0.safetensors: File too large" in message
    assert tree_changes(before, snapshot(root)) == []


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the simulated case covers it")
def test_a_read_only_output_folder_is_refused(finished_run: Path, tmp_path: Path) -> None:
    root = clone_run(finished_run, tmp_path / "run")
    folder = root / "outputs" / "theta0"
    before = snapshot(root)
    folder.chmod(0o555)
    try:
        result = _run_cli(root, "theta0")
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1
    assert "cannot write outputs/theta0/theta0.safetensors: Permission denied" in " ".join(result.stderr.split())
    assert tree_changes(before, snapshot(root)) == []
