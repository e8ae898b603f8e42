"""A CIFAR-100-LT-sized LT-Soups run, timed end to end stage by stage: random ViT-B-16 weights, synthetic images.

    python benchmarks/gpu_run.py                         # on the GPU (about 5-10 minutes on one H100)
    python benchmarks/gpu_run.py --device cpu --smoke    # the same commands at toy size: does the path run?

The data is the embedded world drawn at CIFAR-100-LT's size: 100 classes of 500 down to 5 training images
(imbalance 100: 10,847 images), 20 validation and 100 test images a class, its 32x32 images resized to the
model's 224 px. The model is open_clip ViT-B-16 with random weights (nothing is downloaded), bf16 autocast,
batch 128, 8 loader workers. The method is the paper's: N = 5 (factors 2^0..2^5), M = 2, so 12 members, the
merge, CR, and every evaluation (theta_0, each running soup, stage 1, the final model), MLflow logging to a
sqlite store in the run's folder. Each stage is the `ltsoups` command a user runs (prepare, theta0,
train-members, merge, retrain-head, evaluate), in its own process; the script prints the device's name, the
date, every stage's wall time, the whole run's, and its ratio to the members' training stage measured in the
same run (1.0 would mean the rest costs nothing), then the evaluate stage's table. Exits 1 when a stage fails.

``--smoke`` keeps the commands and shrinks the sizes (4 classes, N = 1, one epoch of batch 4): a check that the
path runs, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from random_weights import write_random_weights

from ltsoups.runtime import Runtime, RuntimeSettings

REPO = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "theta0", "train-members", "merge", "retrain-head", "evaluate")
CIFAR100_LT = "{seed: 0, num_classes: 100, n_max: 500, rho: 100, val_per_class: 20, test_per_class: 100}"
SMOKE_DATA = "{seed: 0, num_classes: 4, n_max: 8, rho: 4, val_per_class: 2, test_per_class: 2}"
SMOKE_SCHEDULE = "{epochs: 1, min_steps: 1, warmup_min_steps: 0}"


def overrides(folder: Path, weights: Path, device: str, workers: int, smoke: bool, tracking: bool) -> list[str]:
    precision = "bf16" if device.startswith("cuda") else "fp32"
    settings = [
        f"workdir={folder / 'outputs'}",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}" if tracking else "tracking.enabled=false",
        f"backbone.params={{model: ViT-B-16, pretrained: {weights}}}",
        f"runtime={{device: {device}, precision: {precision}, workers: {workers}}}",
        f"data.dataset.params={SMOKE_DATA if smoke else CIFAR100_LT}",
        f"plan.sampler.params.rounds={1 if smoke else 5}",
        "members=null",  # the plan's own (the list is dvc.yaml's)
        f"train.optim.batch_size={batch_size(smoke)}",
        f"retrain_head.optim.batch_size={batch_size(smoke)}",
    ]
    if smoke:
        settings += [f"train.schedule={SMOKE_SCHEDULE}", f"retrain_head.schedule={SMOKE_SCHEDULE}"]
    return settings


def batch_size(smoke: bool) -> int:
    return 4 if smoke else 128


def run_stage(stage: str, folder: Path, settings: list[str]) -> tuple[float, str]:
    """``ltsoups STAGE`` with the repository's params.yaml and ``settings``; its wall time and output."""
    command = [sys.executable, "-m", "ltsoups", stage, "--params", str(REPO / "params.yaml")]
    for setting in settings:
        command += ["--set", setting]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (folder / f"{stage}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
        sys.exit(f"ltsoups {stage} failed (exit {done.returncode}); its log: {folder / f'{stage}.log'}")
    return seconds, done.stdout


def member_steps(outputs: Path) -> int:
    return sum(json.loads(path.read_text())["steps"] for path in outputs.glob("members/*/weights.safetensors.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="runtime.device (default cuda)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default 8; --smoke 0)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: check the path runs (not a measurement)")
    parser.add_argument(
        "--no-tracking", dest="tracking", action="store_false", help="log nothing to MLflow (where it is not installed)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it (default: a temp one)")
    args = parser.parse_args()
    workers = args.workers if args.workers is not None else (0 if args.smoke else 8)
    device = Runtime.of(RuntimeSettings(device=args.device)).device  # a GPU this machine lacks: an error naming it
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        settings = overrides(
            folder, write_random_weights(folder, "ViT-B-16"), args.device, workers, args.smoke, args.tracking
        )
        walls: dict[str, float] = {}
        output = ""
        for stage in STAGES:
            walls[stage], output = run_stage(stage, folder, settings)
            print(f"  {stage:<14} {walls[stage]:8.1f} s", flush=True)
        total, training = sum(walls.values()), walls["train-members"]
        steps = member_steps(folder / "outputs")
        batch = batch_size(args.smoke)
        print(f"whole run {total:.1f} s; members' training {training:.1f} s ({steps} steps of batch {batch}: "
              f"{steps * batch / training:.1f} images/s, loading and start-up included)")  # fmt: skip
        print(f"whole run / members' training: {total / training:.2f}")
        print(output)


if __name__ == "__main__":
    main()
