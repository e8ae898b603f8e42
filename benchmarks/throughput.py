"""Member-training throughput of ltsoups' loop against a bare PyTorch loop on the same model, batch and data.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py            # the embedded model on the CPU (goal: >= 0.95)
    python benchmarks/throughput.py --gpu                        # open_clip ViT-B-16, 224 px, batch 128, bf16

Both loops train the same classifier from the same theta_0 on the embedded task's (synthetic) training
images with AdamW, a warmup + cosine learning rate, an EMA of the weights (decay 0.99), the logit-adjusted
loss and the same augmentation (random resized crop, flip). ltsoups trains through
`ltsoups.training.loop.train` (step batches, per-sample seeded transforms, resume-free); the bare loop
through a standard DataLoader with torchvision transforms, LambdaLR and torch's AveragedModel EMA, reading
the loss every step as ltsoups does. Images/s count the steps after --warmup; the two loops alternate for
--rounds rounds and their medians are compared. Evaluation (no grad, the run's precision) over the test
split is timed the same way. `--gpu` uses random ViT-B-16 weights (nothing is downloaded) and prints the
GPU's name. `--set KEY=VALUE` overrides the config of both loops, e.g. a quick CPU smoke test of the GPU path:

    python benchmarks/throughput.py --gpu --device cpu --steps 2 --warmup 1 --rounds 1 --workers 0 \
        --set train.optim.batch_size=4 --set data.dataset.params.test_per_class=1
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from random_weights import write_random_weights
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as v1
from torchvision.transforms import InterpolationMode, v2

from ltsoups.config import LtSoupsConfig, load_config
from ltsoups.data.dataset import LabelledImages
from ltsoups.evaluation import EvaluationInputs, predict
from ltsoups.model import LongTailClassifier
from ltsoups.stages.context import RunContext
from ltsoups.training.batches import AugmentedSamples
from ltsoups.training.loop import SilentObserver, train

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.95


@dataclass(frozen=True)
class Measured:
    train: float
    evaluate: float


class SteadyClock(SilentObserver):
    """Times ltsoups' loop from the end of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_step(self, step: int, loss: float, lr: float) -> None:  # after loss.item(): the step is done
        if step == self.warmup:
            self.start = time.perf_counter()
        self.end, self.steps = time.perf_counter(), step


class TorchvisionImages(Dataset):
    def __init__(self, split: LabelledImages, transform: Callable) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.split.source.image(index)), int(self.split.labels[index])


def ltsoups_round(context: RunContext, model: LongTailClassifier, steps: int, warmup: int) -> Measured:
    config, runtime = context.config, context.runtime
    train_split = context.splits.train
    settings = config.train.model_copy(
        update={"schedule": config.train.schedule.model_copy(update={"min_steps": steps, "epochs": 1e-9})}
    )
    clock = SteadyClock(warmup)
    samples = AugmentedSamples(train_split, context.preprocess, config.train.augment)
    loss_fn = context.plugin(config.train.loss).build(train_split.class_counts())
    train(model, samples, train_split.labels, loss_fn, settings, runtime, config.seed, "benchmark", observer=clock)
    trained = (clock.steps - warmup) * settings.optim.batch_size / (clock.end - clock.start)
    test = context.splits.test
    predict(model, EvaluationInputs(test, context.preprocess, runtime))  # warm
    start = time.perf_counter()
    # New inputs: preprocessed in the timed pass, as the bare loop's are.
    predict(model, EvaluationInputs(test, context.preprocess, runtime))
    return Measured(trained, len(test) / (time.perf_counter() - start))


def bare_transforms(api: str, context: RunContext) -> tuple[Callable, Callable]:
    """Training and evaluation transforms of the bare loop: classic torchvision (v1, on PIL images) or v2."""
    pre, augment, bicubic = context.preprocess, context.config.train.augment, InterpolationMode.BICUBIC
    size, mean, std = [pre.image_size, pre.image_size], list(pre.mean), list(pre.std)
    if api == "v1":
        crop = v1.RandomResizedCrop(size, scale=augment.crop_scale, interpolation=bicubic)
        flip, tail = [v1.RandomHorizontalFlip()] if augment.hflip else [], [v1.ToTensor(), v1.Normalize(mean, std)]
        return v1.Compose([crop, *flip, *tail]), v1.Compose([v1.Resize(size[0], bicubic), v1.CenterCrop(size), *tail])
    flip = [v2.RandomHorizontalFlip()] if augment.hflip else []
    head, tail = [v2.PILToTensor()], [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    crop = v2.RandomResizedCrop(size, scale=augment.crop_scale, interpolation=bicubic, antialias=True)
    resize = [v2.Resize(size[0], interpolation=bicubic, antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*head, crop, *flip, *tail]), v2.Compose([*head, *resize, *tail])


def bare_round(context: RunContext, model: LongTailClassifier, steps: int, warmup: int, api: str) -> Measured:
    config, runtime = context.config, context.runtime
    device, cuda = runtime.device, runtime.device.type == "cuda"
    dtype = torch.bfloat16 if config.runtime.precision.value == "bf16" else torch.float16
    autocast = torch.autocast(device.type, dtype=dtype, enabled=runtime.mixed_precision)
    optim = config.train.optim
    augmented, evaluation = bare_transforms(api, context)
    workers = config.runtime.workers
    train_split = context.splits.train
    loader = DataLoader(
        TorchvisionImages(train_split, augmented), batch_size=optim.batch_size, shuffle=True, drop_last=True,
        num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
    )  # fmt: skip
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.adamw_betas, weight_decay=optim.weight_decay)
    warm = max(1, math.ceil(0.01 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else 0.1 + 0.45 * (1 + math.cos(math.pi * (s - warm) / steps))
    )
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.train.ema.decay))
    counts = torch.as_tensor(train_split.class_counts(), dtype=torch.float32)
    log_prior = torch.log(counts / counts.sum()).to(device)
    step, start = 0, time.perf_counter()
    while step < steps:
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(model(images) + log_prior, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            ema.update_parameters(model)
            loss.item()
            step += 1
            if step == warmup:
                start = time.perf_counter()
            if step == steps:
                break
    trained = (steps - warmup) * optim.batch_size / (time.perf_counter() - start)
    test = DataLoader(
        TorchvisionImages(context.splits.test, evaluation), batch_size=256, num_workers=workers, pin_memory=cuda
    )

    def evaluate_once() -> None:
        model.eval()
        with torch.no_grad(), autocast:
            [model(images.to(device, non_blocking=True)).float().cpu() for images, _ in test]

    evaluate_once()
    start = time.perf_counter()
    evaluate_once()
    return Measured(trained, len(context.splits.test) / (time.perf_counter() - start))


def gpu_config(folder: Path, device: str, workers: int, overrides: list[str]) -> LtSoupsConfig:
    """open_clip ViT-B-16 with random weights written to ``folder`` (no download), 224 px, batch 128, bf16."""
    weights = write_random_weights(folder, "ViT-B-16")
    return load_config(REPO / "params.yaml", [
        f"backbone.params={{model: ViT-B-16, pretrained: {weights}}}",
        f"runtime={{device: {device}, precision: bf16, workers: {workers}}}",
        "train.optim.batch_size=128",
        "tracking.enabled=false",
        f"workdir={folder}",
        *overrides,
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="ViT-B-16 at 224 px, batch 128, bf16, on the GPU")
    parser.add_argument("--device", default=None, help="override the device (e.g. cpu to smoke-test --gpu)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per round (default 40; --gpu 60)")
    parser.add_argument("--warmup", type=int, default=None, help="steps left out of the timing (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each loop")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default 0; --gpu 8)")
    parser.add_argument(
        "--transforms", choices=("v1", "v2"), default="v1", help="the bare loop's torchvision transforms API"
    )
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="a config override (repeatable)")
    args = parser.parse_args()
    steps = args.steps or (60 if args.gpu else 40)
    warmup = args.warmup if args.warmup is not None else min(10, steps // 2)
    with tempfile.TemporaryDirectory() as tmp:
        if args.gpu:
            workers = 8 if args.workers is None else args.workers
            config = gpu_config(Path(tmp), args.device or "cuda", workers, args.overrides)
        else:
            config = load_config(REPO / "params.yaml", [
                f"runtime={{device: {args.device or 'cpu'}, precision: fp32, workers: {args.workers or 0}}}",
                "tracking.enabled=false",
                f"workdir={tmp}",
                *args.overrides,
            ])  # fmt: skip
        context = RunContext(config)
        model = context.zero_shot_classifier()
        theta0 = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        results: dict[str, list[Measured]] = {"ltsoups": [], "bare": []}
        for _ in range(args.rounds):
            bare = functools.partial(bare_round, api=args.transforms)
            for name, one_round in (("ltsoups", ltsoups_round), ("bare", bare)):
                model.load_state_dict(theta0)
                results[name].append(one_round(context, model, steps, warmup))
    device = context.runtime.device
    what = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} torch thread(s)"
    )
    model_name, train_settings = config.backbone.params.model, config.train.optim
    print(f"device: {what}; {model_name} at {context.preprocess.image_size} px, batch {train_settings.batch_size}")
    print(
        f"precision {config.runtime.precision.value}, loader workers {config.runtime.workers}, "
        f"bare loop with torchvision transforms {args.transforms}"
    )
    print(f"{args.rounds} rounds of {steps} steps ({warmup} left out); load average {os.getloadavg()[0]:.2f}")
    median = {
        name: (statistics.median(m.train for m in runs), statistics.median(m.evaluate for m in runs))
        for name, runs in results.items()
    }
    for name, (trained, evaluated) in median.items():
        print(f"{name:>8}: train {trained:8.1f} images/s   eval {evaluated:8.1f} images/s")
    train_ratio, eval_ratio = (median["ltsoups"][i] / median["bare"][i] for i in (0, 1))
    print(f"train ratio ltsoups / bare: {train_ratio:.3f} (goal >= {GOAL}); eval ratio: {eval_ratio:.3f}")


if __name__ == "__main__":
    main()
