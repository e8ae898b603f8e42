"""Wall time and zero-shot accuracy of the ltsoups-mini pretraining recipe on this machine."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from ltsoups.embedded.pretrain import pretrain
from ltsoups.embedded.recipe import PretrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PretrainConfig() if args.steps is None else PretrainConfig(steps=args.steps)
    with tempfile.TemporaryDirectory() as workdir:
        report = pretrain(config, Path(workdir) / "ltsoups-mini.safetensors")
    zero_shot = report.zero_shot
    print(f"steps {config.steps}, {report.torch_threads} threads: {report.wall_seconds:.1f} s wall")
    print(f"contrastive loss {report.initial_loss:.3f} -> {report.final_loss:.3f}")
    print(
        f"zero-shot balanced accuracy {100 * zero_shot.balanced_accuracy:.1f}% "
        f"(many {_percent(zero_shot.many)}, medium {_percent(zero_shot.medium)}, few {_percent(zero_shot.few)})"
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
