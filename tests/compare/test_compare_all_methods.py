"""Every shipped method at one seed on the tiny config: what each shares with the others, and what it measures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_comparison import run_cli
from tiny_config import tiny_params, write_params

from ltsoups.compare.methods import load_methods
from ltsoups.compare.results import ComparisonSpec, MethodResult
from ltsoups.workspace import Workspace


def member(root: Path, method: str, name: str) -> Path:
    return Workspace(root / "runs" / method / "seed-0").member(name)


@pytest.mark.slow
def test_every_shipped_method_runs_and_shares_what_is_identical(tmp_path: Path, random_mini_clip: Path) -> None:
    params = write_params(tmp_path, tiny_params(random_mini_clip, workdir=str(tmp_path / "outputs")))
    run_cli("compare", "--seeds", "1", "--resamples", "20", "-p", str(params))
    root = tmp_path / "outputs" / "compare"
    spec = ComparisonSpec.read(root)
    assert [m.name for m in spec.methods] == list(load_methods())
    results = {m.name: MethodResult.read(root / "runs" / m.name / "seed-0" / "result.json") for m in spec.methods}

    # 6 LT-Soups members (shared by lt-soups-uniform and ensemble), 1 full-data LA member without EMA (full-ft and
    # full-ft+cr), 2 full-data ones with EMA (model-soups), 1 cross-entropy member (crt and lws), 2 at ratio 8, 2 PEFT
    # ones.
    assert spec.members_trained == 6 + 1 + 2 + 1 + 2 + 2
    assert os.path.samefile(member(root, "full-ft", "f8-r0"), member(root, "full-ft+cr", "f8-r0"))
    assert not os.path.samefile(member(root, "full-ft", "f8-r0"), member(root, "model-soups", "f8-r0"))
    assert not os.path.samefile(member(root, "full-ft", "f8-r0"), member(root, "crt", "f8-r0"))
    assert os.path.samefile(member(root, "crt", "f8-r0"), member(root, "lws", "f8-r0"))
    assert len(list((root / "store" / "theta0").iterdir())) == 3  # the full encoder's, AdaptFormer's, LoRA's

    stage1, final = "stage 1 (soup)", "stage 1 + CR"
    expected = {
        "lt-soups": final, "lt-soups-uniform": final, "lt-soups-lambda-n": final, "lt-soups-search": final,
        "full-ft": stage1, "full-ft+cr": final, "crt": final,
        "lws": final, "model-soups": stage1, "soups-rho": stage1, "linear-probe": final, "zero-shot": stage1,
        "lift-adaptformer": stage1, "lift-lora": stage1, "ensemble": "ensemble of 6 members",
    }  # fmt: skip
    assert {name: r.model for name, r in results.items()} == expected
    for name in ("zero-shot", "linear-probe"):
        assert results[name].weight_change == {"weight_change": 0.0, "weight_change_relative": 0.0}
    for name in ("full-ft", "lift-adaptformer", "lift-lora", "lt-soups"):
        assert results[name].weight_change["weight_change"] > 0
    assert results["ensemble"].models_at_inference == 6 and results["ensemble"].weight_change is None
    for name in ("lt-soups-lambda-n", "lt-soups-search"):  # lt-soups' members, the merge chosen on validation
        assert os.path.samefile(member(root, "lt-soups", "f4-r1"), member(root, name, "f4-r1"))
        assert (root / "runs" / name / "seed-0" / "soup" / "search.json").is_file()
        assert results[name].search_cost is not None and results[name].search_cost.val_passes > 0
    assert results["lt-soups"].search_cost is None and results["ensemble"].search_cost is None
    assert results["zero-shot"].cost.trainings == 0 and results["linear-probe"].cost.trainings == 1
    assert results["model-soups"].cost.trainings == 2 and results["full-ft+cr"].cost.trainings == 2
    assert (root / "report" / "comparison.md").read_text().count("\n| ") >= 2 * len(expected)
