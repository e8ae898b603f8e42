"""What a training step and an evaluation cost on the embedded default, and the step budget they imply.

Usage: python benchmarks/embedded_step_cost.py [--steps 40] [--minutes 15] [--seeds 3] [--models 12]
Trains the shipped mini-CLIP with the pipeline's own loop on the configured training split (the
repository's params.yaml): one process on 1 thread (the baseline), one on 2 threads, and two 1-thread
processes side by side (members run two at a time); then times the first read of each split (the
embedded task draws its images then) and the scoring of theta_0 on it.
Prints each mode's throughput as a ratio to the baseline, and how many training steps per world seed
fit in the budget once every seed's models are evaluated.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WARMUP_STEPS = 5  # first steps pay for allocation and caches; they are not timed


def _config(steps: int):
    from ltsoups.config import load_config

    overrides = [
        "tracking.enabled=false",
        "runtime.device=cpu",
        f"train.schedule.min_steps={steps + WARMUP_STEPS}",
        "train.schedule.epochs=0.001",
    ]
    return load_config(REPO / "params.yaml", overrides)


def seconds_per_step(threads: int, steps: int) -> float:
    """Median wall seconds of one optimiser step (batch as configured) of a full fine-tune."""
    import torch

    from ltsoups.stages.context import RunContext
    from ltsoups.training.batches import AugmentedSamples
    from ltsoups.training.loop import train

    torch.set_num_threads(threads)
    config = _config(steps)
    context = RunContext(config)
    model = context.zero_shot_classifier()
    split = context.splits.train
    loss_fn = context.plugin(config.train.loss).build(split.class_counts())
    stamps: list[float] = []

    class Stamps:
        def on_start(self, total_steps: int, first_step: int) -> None:
            pass

        def on_step(self, step: int, loss: float, lr: float) -> None:
            stamps.append(time.perf_counter())

        def on_validation(self, step: int, score: float) -> None:
            pass

    samples = AugmentedSamples(split, context.preprocess, config.train.augment)
    train(model, samples, split.labels, loss_fn, config.train, context.runtime, 0, "bench", None, Stamps())
    return float(np.median(np.diff(stamps[WARMUP_STEPS - 1 :])))


def _worker(args: tuple[int, int]) -> float:
    return seconds_per_step(*args)


@dataclass(frozen=True)
class SplitCost:
    name: str
    images: int
    read_seconds: float
    """First read of the split's images (the embedded task draws them then)."""
    evaluation_seconds: float
    """Scoring one model on the split, images already in memory."""


def split_costs() -> list[SplitCost]:
    """Per split, on 1 thread: the first read of its images and one model's evaluation."""
    import torch

    from ltsoups.evaluation import EvaluationInputs, evaluate
    from ltsoups.stages.context import RunContext

    torch.set_num_threads(1)
    config = _config(1)
    context = RunContext(config)
    model = context.zero_shot_classifier()
    costs = []
    for name in ("train", "val", "test"):
        split = getattr(context.splits, name)
        start = time.perf_counter()
        split.source.image(0)
        read = time.perf_counter() - start
        start = time.perf_counter()
        inputs = EvaluationInputs(split, context.preprocess, context.runtime)  # preprocessed in the timed pass
        evaluate(model, inputs, context.train_counts, config.data.thresholds)
        costs.append(SplitCost(name, len(split), read, time.perf_counter() - start))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--minutes", type=float, default=15, help="wall-clock budget of the whole comparison")
    parser.add_argument("--seeds", type=int, default=3, help="world seeds the comparison runs")
    parser.add_argument("--models", type=int, default=12, help="models scored on val and test per seed")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as pool:
        one = pool.apply(seconds_per_step, (1, args.steps))
    with spawn.Pool(1) as pool:
        two = pool.apply(seconds_per_step, (2, args.steps))
    with spawn.Pool(2) as pool:
        pair = pool.map(_worker, [(1, args.steps)] * 2)
    with spawn.Pool(1) as pool:
        costs = {cost.name: cost for cost in pool.apply(split_costs)}
    print(f"training step: 1 thread {1000 * one:.0f} ms (baseline)")
    print(f"               2 threads {1000 * two:.0f} ms: throughput ratio {one / two:.2f}")
    side_by_side = 2 / max(pair)
    print(
        f"               2 processes x 1 thread {1000 * pair[0]:.0f} / {1000 * pair[1]:.0f} ms: "
        f"throughput ratio {side_by_side * one:.2f}"
    )
    for cost in costs.values():
        print(
            f"{cost.name} split, {cost.images} images (1 thread): first read {cost.read_seconds:.1f} s, "
            f"one model's evaluation {cost.evaluation_seconds:.1f} s"
        )
    evaluation = args.models * (costs["val"].evaluation_seconds + costs["test"].evaluation_seconds)
    evaluation /= 2  # two processes score models side by side
    per_seed = (60 * args.minutes / args.seeds - evaluation) * side_by_side
    print(
        f"in {args.minutes:g} minutes, {args.seeds} seeds, {args.models} models evaluated per seed: "
        f"{per_seed:.0f} training steps per seed (two 1-thread workers, before start-up and rendering)"
    )


if __name__ == "__main__":
    main()
