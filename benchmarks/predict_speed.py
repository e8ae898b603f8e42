"""How fast `ltsoups predict` classifies image files, and ONNX Runtime against torch on the CPU.

    python benchmarks/predict_speed.py [--model outputs/final/final.safetensors] [--params params.yaml]

Writes the configured dataset's test images as PNG files (default: up to 2048 of them), then, in one run:

1. `ltsoups predict`'s work (`predict_files`: decode, evaluation views, batches on runtime.device at
   runtime.precision, softmax, top-5) against a bare loop over the same files: a torch DataLoader with
   the same workers and batch size giving the centre crop, and `model(images)`. Goal: ratio >= 0.9.
2. The exported ONNX model (`ltsoups export onnx`'s) in ONNX Runtime against the same model in torch,
   both on the CPU on the same preprocessed batches (decoding left out).

Each timing is the best of --repeats runs after one untimed run; the model is loaded once, before any timing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ltsoups.config import load_config
from ltsoups.export.choices import ExportFormat
from ltsoups.export.onnx_format import INPUT, MODEL, OUTPUT, session
from ltsoups.export.run import export_classifier
from ltsoups.inference.classifier import CentreView, LoadedClassifier, load_classifier
from ltsoups.inference.predict import BATCH_SIZE, predict_files
from ltsoups.registry import installed_registry
from ltsoups.runtime import Runtime


class CentreCrops(Dataset):
    """The bare baseline's dataset: each file decoded and centre-cropped, nothing else."""

    def __init__(self, paths: list[Path], transform: CentreView) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.transform(image)


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed runs, after one untimed run (allocator, thread pools, file cache)."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def bare_loop(loaded: LoadedClassifier, paths: list[Path], runtime: Runtime) -> None:
    loader = DataLoader(
        CentreCrops(paths, loaded.preprocess),
        batch_size=BATCH_SIZE,
        num_workers=runtime.workers,
        pin_memory=runtime.device.type == "cuda",
    )
    model = runtime.place(loaded.model).eval()
    with runtime.inference():
        for images in loader:
            model(runtime.place(images)).float().cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("outputs/final/final.safetensors"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--images", type=int, default=2048, help="test images written as PNG files (at most)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = load_config(args.params if args.params.is_file() else None, [])
    runtime = Runtime.of(config.runtime)
    loaded = load_classifier(args.model)
    test = installed_registry().instantiate(config.data.dataset).load().test
    count = min(args.images, len(test))
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as folder:
        paths = [Path(folder) / f"{i:05d}.png" for i in range(count)]
        for i, path in enumerate(paths):
            test.source.image(i).save(path)
        print(
            f"{count} PNG files; device {runtime.device}, precision {runtime.precision.value}, "
            f"{runtime.workers} loader workers, batch {BATCH_SIZE}, {torch.get_num_threads()} torch threads"
        )

        ours = best_seconds(lambda: predict_files(loaded, paths, runtime, top_k=5), args.repeats)
        bare = best_seconds(lambda: bare_loop(loaded, paths, runtime), args.repeats)
        print(f"ltsoups predict: {count / ours:8.1f} images/s")
        print(f"bare loop:       {count / bare:8.1f} images/s")
        print(f"ratio predict / bare: {bare / ours:.3f} (goal >= 0.9)")

        cpu_model = loaded.model.cpu().eval()
        batches = [
            torch.stack([loaded.preprocess(Image.open(p)) for p in paths[start : start + BATCH_SIZE]])
            for start in range(0, count, BATCH_SIZE)
        ]
        export_classifier(loaded, ExportFormat.ONNX, Path(folder) / "onnx", batches[0][:64])
        onnx = session(Path(folder) / "onnx" / MODEL)

        def torch_cpu() -> None:
            with torch.no_grad():
                for batch in batches:
                    cpu_model(batch)

        def onnx_cpu() -> None:
            for batch in batches:
                onnx.run([OUTPUT], {INPUT: batch.numpy()})

        torch_seconds = best_seconds(torch_cpu, args.repeats)
        onnx_seconds = best_seconds(onnx_cpu, args.repeats)
        print(f"torch (CPU):        {count / torch_seconds:8.1f} images/s")
        print(f"ONNX Runtime (CPU): {count / onnx_seconds:8.1f} images/s")
        print(f"ratio ONNX Runtime / torch: {torch_seconds / onnx_seconds:.3f}")


if __name__ == "__main__":
    main()
