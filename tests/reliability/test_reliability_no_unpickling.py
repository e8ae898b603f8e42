"""No unpickling: pickle files handed to any command are refused, and a malicious payload never runs."""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from tiny_run import clone_run, rewrite
from typer.testing import CliRunner

import ltsoups
from ltsoups.checkpoint import sidecar_path
from ltsoups.cli.app import app

runner = CliRunner()
PACKAGE = Path(ltsoups.__file__).parent

# Calls that unpickle (or run arbitrary code from a file); none may appear in the package.
UNPICKLING_CALLS = {
    ("torch", "load"),
    ("jit", "load"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("dill", "load"),
    ("dill", "loads"),
    ("cloudpickle", "load"),
    ("joblib", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
}
UNPICKLING_MODULES = {"pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "_pickle"}


def _unpickling_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {name}" for name in names if name.split(".")[0] in UNPICKLING_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (owner_name, node.func.attr) in UNPICKLING_CALLS:
                found.append(f"{owner_name}.{node.func.attr}(...) at line {node.lineno}")
            if node.func.attr == "load" and any(k.arg == "allow_pickle" for k in node.keywords):
                found.append(f"{owner_name}.load(allow_pickle=...) at line {node.lineno}")
    return found


def test_no_module_of_the_package_unpickles() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) >= 40, f"only {len(modules)} modules found under {PACKAGE}: is discovery broken?"
    offenders = {str(m.relative_to(PACKAGE)): uses for m in modules if (uses := _unpickling_uses(m.read_text()))}
    assert offenders == {}


def test_the_scan_finds_what_it_looks_for() -> None:
    source = "import pickle\nimport torch\nx = torch.load('a.pt')\ny = np.load('a.npy', allow_pickle=True)\n"
    assert _unpickling_uses(source) == [
        "import pickle",
        "torch.load(...) at line 3",
        "np.load(allow_pickle=...) at line 4",
    ]


# ------------------------------------------------------------------------------------ the payload


class MarkerPayload:
    """Unpickling this object creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _plain_pickle(marker: Path) -> bytes:
    return pickle.dumps(MarkerPayload(marker))


def _torch_zip_pickle(marker: Path, dest: Path) -> None:
    torch.save({"state_dict": MarkerPayload(marker)}, dest)  # what a .pt/.pth file from torch.save looks like


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Unpickling the payload does create its marker: the tests below would notice an unpickling."""
    marker = tmp_path / "proof"
    pickle.loads(_plain_pickle(marker))
    assert marker.exists()


def _with_matching_sidecar(path: Path) -> None:
    """Give a planted file a sidecar whose sha256 matches it, so only the format check stands in the way."""
    side = sidecar_path(path)
    sidecar = json.loads(side.read_text()) if side.exists() else {"kind": "member"}
    sidecar["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    if side.exists():
        side.unlink()
    side.write_text(json.dumps(sidecar))


def _plant(relative: str, torch_format: bool = False) -> Callable[[Path, Path], None]:
    def plant(root: Path, marker: Path) -> None:
        path = root / relative
        path.unlink(missing_ok=True)
        if torch_format:
            _torch_zip_pickle(marker, path)
        else:
            path.write_bytes(_plain_pickle(marker))
        _with_matching_sidecar(path)

    return plant


def _as_backbone(name: str, torch_format: bool = False) -> Callable[[Path, Path], None]:
    def plant(root: Path, marker: Path) -> None:
        if torch_format:
            _torch_zip_pickle(marker, root / name)
        else:
            (root / name).write_bytes(_plain_pickle(marker))
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["backbone"]["params"]["pretrained"] = name
        rewrite(root / "params.yaml", yaml.safe_dump(params).encode())

    return plant


def _as_cifar(root: Path, marker: Path) -> None:
    """CIFAR-100's files are pickles by format: a planted one must fail the md5 check before it is read."""
    folder = root / "cifar" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(_plain_pickle(marker))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"] = {"dataset": {"name": "cifar100-lt", "params": {"root": "cifar"}}}
    rewrite(root / "params.yaml", yaml.safe_dump(params).encode())


def _as_params(root: Path, marker: Path) -> None:
    (root / "params.pkl").write_bytes(_plain_pickle(marker))


@dataclass(frozen=True)
class Plant:
    """Where a pickle is put, the command that meets it, and what that command must say."""

    name: str
    place: Callable[[Path, Path], None]
    command: tuple[str, ...]
    expect: str


TRAIN = ("train-member", "f1-r0")
PLANTS = [
    Plant("backbone .pt", _as_backbone("weights.pt"), ("theta0",), "weights.pt: .pt files are pickles"),
    Plant(
        "backbone .pth from torch.save",
        _as_backbone("weights.pth", torch_format=True),
        ("theta0",),
        "weights.pth: .pth files are pickles",
    ),
    Plant("backbone .bin", _as_backbone("weights.bin"), ("theta0",), "weights.bin: .bin files are pickles"),
    Plant("backbone .ckpt", _as_backbone("weights.ckpt"), ("theta0",), "weights.ckpt: .ckpt files are pickles"),
    Plant("backbone without suffix", _as_backbone("weights"), ("theta0",), "weights: not a safetensors file"),
    Plant(
        "backbone named .safetensors",
        _as_backbone("weights.safetensors", torch_format=True),
        ("theta0",),
        "weights.safetensors: not a safetensors file",
    ),
    Plant(
        "theta0 for train-member",
        _plant("outputs/theta0/theta0.safetensors"),
        TRAIN,
        "outputs/theta0/theta0.safetensors: not a safetensors file",
    ),
    Plant(
        "resume state for train-member",
        _plant("outputs/members/f1-r0/resume-step2.safetensors"),
        TRAIN,
        "outputs/members/f1-r0/resume-step2.safetensors: not a safetensors file",
    ),
    Plant(
        "theta0 for merge",
        _plant("outputs/theta0/theta0.safetensors"),
        ("merge",),
        "outputs/theta0/theta0.safetensors: not a safetensors file",
    ),
    Plant(
        "member for merge",
        _plant("outputs/members/f2-r0/weights.safetensors", torch_format=True),
        ("merge",),
        "outputs/members/f2-r0/weights.safetensors: not a safetensors file",
    ),
    Plant(
        "soup for retrain-head",
        _plant("outputs/soup/soup.safetensors"),
        ("retrain-head",),
        "outputs/soup/soup.safetensors: not a safetensors file",
    ),
    Plant(
        "running soup for evaluate",
        _plant("outputs/soup/running/upto-f2.safetensors"),
        ("evaluate",),
        "outputs/soup/running/upto-f2.safetensors: not a safetensors file",
    ),
    Plant(
        "final for evaluate",
        _plant("outputs/final/final.safetensors", torch_format=True),
        ("evaluate",),
        "outputs/final/final.safetensors: not a safetensors file",
    ),
    Plant("CIFAR-100 files", _as_cifar, ("prepare",), "cifar/cifar-100-python: torchvision rejected"),
    Plant(
        "params file",
        _as_params,
        ("validate", "--params", "params.pkl"),
        "params.pkl: not a YAML text file (byte 0 is not UTF-8)",
    ),
]


@pytest.fixture
def unpickling_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and blocks) any call of the usual unpickling entry points while a command runs."""
    calls: list[str] = []

    def spy(name: str) -> Callable[..., object]:
        def blocked(*args: object, **kwargs: object) -> object:
            calls.append(name)
            raise RuntimeError(f"{name} called")

        return blocked

    for owner, name in ((torch, "load"), (torch.jit, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(owner, name, spy(f"{owner.__name__}.{name}"))
    return calls


@pytest.mark.parametrize("plant", PLANTS, ids=[plant.name for plant in PLANTS])
def test_a_malicious_pickle_is_refused_and_never_executed(
    plant: Plant,
    finished_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unpickling_spy: list[str],
) -> None:
    root = clone_run(finished_run, tmp_path / "run")
    marker = tmp_path / "PWNED"
    plant.place(root, marker)
    monkeypatch.chdir(root)
    result = runner.invoke(app, list(plant.command), env={"COLUMNS": "400"})
    message = " ".join(result.output.split())
    print(f"{plant.name} -> exit {result.exit_code}: {message}")  # shown when a case fails
    assert result.exit_code != 0, message
    assert plant.expect in message
    assert not marker.exists(), "the pickle payload was executed"
    assert unpickling_spy == []
