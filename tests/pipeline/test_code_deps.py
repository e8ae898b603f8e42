"""Every module a DVC stage runs is among that stage's deps in dvc.yaml, so a code change reruns it.

The modules a stage runs: its stage function's module and the plugins it builds through the
registry, plus everything they import from ltsoups (also inside functions), found by reading the
source. The CLI and the tracking layer are left out on purpose: they do not shape any output.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ["ltsoups.plugins.datasets"]
BACKBONES = ["ltsoups.plugins.backbones", "ltsoups.plugins.timm_backbone"]
STAGE_ENTRIES = {
    "data": ["ltsoups.stages.data_fingerprint", *DATA],
    "prepare": ["ltsoups.stages.prepare", "ltsoups.member_list", "ltsoups.plugins.samplers", *DATA],
    "theta0": ["ltsoups.stages.theta0", *BACKBONES, *DATA],
    "train-member": ["ltsoups.stages.member", "ltsoups.plugins.losses", *BACKBONES, *DATA],
    "merge": ["ltsoups.stages.merge", "ltsoups.plugins.mergers", *BACKBONES, *DATA],
    "retrain-head": ["ltsoups.stages.retrain_head", "ltsoups.plugins.losses", *BACKBONES, *DATA],
    "evaluate": ["ltsoups.stages.evaluate", *BACKBONES, *DATA],
}
# Package markers and the output layout (dvc.yaml spells out the same paths, so a change there is an
# edit of dvc.yaml anyway).
NOT_DEPS = {"ltsoups/workspace.py"}


def module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _annotation_only(tree: ast.Module) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:``: imports for type hints, which never run."""
    blocks = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    ]
    return {id(inner) for block in blocks for statement in block.body for inner in ast.walk(statement)}


def imported_modules(path: Path) -> set[str]:
    """ltsoups modules ``path`` imports, at the top or inside functions (not those only for type hints)."""
    found = set()
    tree = ast.parse(path.read_text())
    skipped = _annotation_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("ltsoups.") and module_file(name) is not None}


def code_of(entries: list[str]) -> set[str]:
    """Files of the entries and of everything they import, transitively (package __init__ files aside)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        assert path is not None, f"{name} is not a module of ltsoups"
        todo.extend(imported_modules(path))
    files = {module_file(name).relative_to(ROOT).as_posix() for name in seen}
    return {path for path in files if not path.endswith("__init__.py")} - NOT_DEPS


def stage_deps(stage: str) -> list[str]:
    definition = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    deps = definition.get("do", definition)["deps"]
    return [dep for dep in deps if dep.startswith("ltsoups")]


@pytest.mark.parametrize("stage", sorted(STAGE_ENTRIES))
def test_stage_depends_on_the_code_it_runs(stage: str) -> None:
    deps = stage_deps(stage)
    missing = sorted(path for path in code_of(STAGE_ENTRIES[stage]) if not any(_covers(dep, path) for dep in deps))
    assert not missing, f"dvc.yaml stage {stage!r} does not depend on {missing}"
    assert all((ROOT / dep).exists() for dep in deps), f"{stage}: a dependency of dvc.yaml does not exist"


def test_every_stage_is_checked() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_ENTRIES)


def _covers(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")
