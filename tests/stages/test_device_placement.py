"""Every stage runs its network on the configured device: theta_0 (text prompts and class means), members with
their best-val snapshots, running-soup validation, CR (feature cache, head training, snapshots) and evaluation.

A spy watches every outermost module call of every stage (through global forward hooks, so copies and
modules a stage builds itself are watched too) and checks that the module's weights and its inputs

- live on the configured device (with a GPU, the test runs on it too), at the configured precision, and
- got there through ``Runtime.place``, the run's one way onto its device. On a CPU-only machine this is the
  check with teeth: a batch never moved, or a model built or copied behind the runtime's back, lives on the
  CPU like everything else, but it did not pass through ``place``. The last tests show the spy catching both.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_config import tiny_params, tiny_training, validate_config
from torch import nn

from ltsoups.evaluation import evaluate
from ltsoups.runtime import Precision, Runtime
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import evaluate_all
from ltsoups.stages.member import member_job, train_member
from ltsoups.stages.merge import merge_members
from ltsoups.stages.prepare import prepare
from ltsoups.stages.retrain_head import retrain_head
from ltsoups.stages.theta0 import build_theta0
from ltsoups.training.batches import ImageSamples
from ltsoups.workspace import Workspace

pytestmark = pytest.mark.slow
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here: the CPU run checks placement")
DEVICES = [pytest.param(("cpu", "fp32"), id="cpu"), pytest.param(("cuda", "bf16"), id="cuda-bf16", marks=CUDA)]


class PlacementSpy:
    """What the outermost module calls of each stage saw: counts by (stage, training?), and every violation."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stage = "outside any stage"
        self.calls: Counter[tuple[str, bool]] = Counter()
        self.violations: list[str] = []
        self._placed: set[int] = set()
        self._kept: list[torch.Tensor] = []  # alive, so no other tensor reuses a recorded id
        self._depth = 0

    def placed(self, value: nn.Module | torch.Tensor) -> None:
        tensors = [value] if isinstance(value, torch.Tensor) else chain(value.parameters(), value.buffers())
        for tensor in tensors:
            self._placed.add(id(tensor))
            self._kept.append(tensor)

    @contextmanager
    def watching(self, stage: str) -> Iterator[None]:
        self.stage, self._depth = stage, 0
        before = torch.nn.modules.module.register_module_forward_pre_hook(self._enter)
        after = torch.nn.modules.module.register_module_forward_hook(self._leave)
        try:
            yield
        finally:
            before.remove()
            after.remove()
            self.stage = "outside any stage"

    def _enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._depth += 1
        if self._depth == 1:  # the call a stage made; the modules inside run where their caller put them
            self._check(module, args)

    def _leave(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._depth -= 1

    def _check(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.calls[(self.stage, torch.is_grad_enabled())] += 1
        what = f"{self.stage}: {type(module).__name__}"
        device = self.runtime.device
        weights = chain(module.named_parameters(), module.named_buffers())
        inputs = [(f"input {i}", arg) for i, arg in enumerate(args) if isinstance(arg, torch.Tensor)]
        for name, tensor in [*weights, *inputs]:
            if tensor.device != device:
                self.violations.append(f"{what} {name} is on {tensor.device}, not {device}")
            elif id(tensor) not in self._placed:
                self.violations.append(f"{what} {name} did not reach {device} through Runtime.place")
        if self.runtime.mixed_precision and not torch.is_autocast_enabled(device.type):
            self.violations.append(f"{what} ran without autocast at {self.runtime.precision.value}")


@dataclass(frozen=True)
class SpiedRuntime(Runtime):
    """The run's runtime, telling the spy what it placed."""

    spy: PlacementSpy = field(default=None, compare=False)  # type: ignore[assignment]

    def place(self, value: Any) -> Any:
        placed = super().place(value)
        self.spy.placed(placed)
        return placed


def spied_context(config_params: dict[str, Any]) -> tuple[RunContext, PlacementSpy]:
    """A RunContext whose runtime reports to a spy (set before anything is loaded, so the classifier is seen too)."""
    context = RunContext(validate_config(config_params))
    real = context.runtime
    spy = PlacementSpy(real)
    context.__dict__["runtime"] = SpiedRuntime(real.device, real.precision, real.workers, spy)  # the cached_property
    return context, spy


def best_val(**sections: Any) -> dict[str, Any]:
    return tiny_training(selection={"mode": "best-val", "snapshots": 2}, **sections)


def pipeline_params(pretrained: Path, workdir: Path, device: str, precision: str) -> dict[str, Any]:
    return tiny_params(
        pretrained,
        plan={"sampler": {"name": "progressive", "params": {"rounds": 1, "replicas": 2}}},
        runtime={"device": device, "precision": precision},
        train=best_val(augment={"crop_scale": [0.5, 1.0]}),
        retrain_head=best_val(augment={"enabled": False}),
        workdir=str(workdir),
    )


@pytest.mark.parametrize("where", DEVICES)
def test_every_stage_runs_on_the_configured_device(random_mini_clip: Path, tmp_path: Path, where: Any) -> None:
    params = pipeline_params(random_mini_clip, tmp_path / "outputs", *where)
    context, spy = spied_context(params)
    workspace = Workspace(tmp_path / "outputs")
    prepare(context, workspace)
    with spy.watching("theta0 from prompts"):
        build_theta0(context, workspace)
    with spy.watching("members"):
        for member in ("f1-r0", "f1-r1", "f2-r0", "f2-r1"):
            train_member(context, workspace, member_job(context, workspace, member))
    with spy.watching("merge"):
        merge_members(context, workspace)
    with spy.watching("CR on cached features"):
        retrain_head(context, workspace)
    with spy.watching("evaluate"):
        evaluate_all(context, workspace)
    augmented = {**params, "retrain_head": best_val(augment={"enabled": True})}
    cr_context, cr_spy = spied_context(augmented)
    with cr_spy.watching("CR with augmentation"):
        retrain_head(cr_context, workspace)

    assert spy.violations == [] and cr_spy.violations == []
    trained, scored = True, False  # grad enabled: training; disabled: inference (snapshots, caches, evaluation)
    assert spy.calls[("theta0 from prompts", scored)] == 1  # one batch of prompts through the text tower
    assert spy.calls[("members", trained)] >= 12 and spy.calls[("members", scored)] >= 4 * 2  # best-val snapshots
    assert spy.calls[("merge", scored)] == 2  # each running soup on the val split
    assert spy.calls[("CR on cached features", trained)] >= 3  # the head alone, on cached features
    assert spy.calls[("CR on cached features", scored)] >= 2 + 2  # feature caches of train and val, 2 snapshots
    # one test batch and one val batch (calibration's temperature) each for theta_0 and + CR; the test batch for
    # the running soup and stage 1, whose val logits are the merge's, kept by the context
    assert spy.calls[("evaluate", scored)] == 2 * 2 + 2
    assert cr_spy.calls[("CR with augmentation", trained)] >= 3 and cr_spy.calls[("CR with augmentation", scored)] >= 2


@pytest.mark.parametrize("where", DEVICES)
def test_theta0_from_class_means_runs_on_the_configured_device(tmp_path: Path, where: Any) -> None:
    import timm
    from safetensors.torch import save_file

    vit = timm.create_model("vit_tiny_patch16_224.augreg_in21k", pretrained=False, img_size=32, num_classes=0)
    weights = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(weights))
    backbone = {"name": "timm", "params": {"model": "vit_tiny_patch16_224.augreg_in21k", "pretrained": str(weights)}}
    backbone["params"]["image_size"] = 32
    params = pipeline_params(weights, tmp_path / "outputs", *where)
    context, spy = spied_context({**params, "backbone": backbone})
    with spy.watching("theta0 from class means"):
        build_theta0(context, Workspace(tmp_path / "outputs"))
    assert spy.violations == []
    assert spy.calls[("theta0 from class means", False)] >= 1  # the training images' features


# ------------------------------------------------------------------------------ the spy can fail


@pytest.fixture
def trained_context(random_mini_clip: Path, tmp_path: Path) -> tuple[RunContext, PlacementSpy]:
    context, spy = spied_context(pipeline_params(random_mini_clip, tmp_path, "cpu", Precision.FP32.value))
    build_theta0(context, Workspace(tmp_path))
    return context, spy


def test_the_spy_catches_a_model_copied_behind_the_runtimes_back(trained_context: Any) -> None:
    context, spy = trained_context
    copied = copy.deepcopy(context.zero_shot_classifier())  # the old best-val scorer: a copy never placed
    with spy.watching("scoring a copy"):
        evaluate(copied, context.evaluation_inputs("val"), context.train_counts, context.config.data.thresholds)
    assert spy.violations and all("did not reach cpu through Runtime.place" in v for v in spy.violations)
    assert any("encoder" in violation or "weight" in violation for violation in spy.violations)


def test_the_spy_catches_a_batch_left_where_the_loader_put_it(trained_context: Any) -> None:
    context, spy = trained_context
    model = context.zero_shot_classifier()
    loader = context.runtime.loader(ImageSamples(context.splits.val, context.preprocess.fixed), batch_size=4)
    images, _ = next(iter(loader))
    with spy.watching("a forgotten move"), torch.no_grad():
        model(images)
    assert spy.violations == ["a forgotten move: LongTailClassifier input 0 did not reach cpu through Runtime.place"]
