"""Predictions as files: CSV (one row per image, top-k class and probability columns) or JSON lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from ltsoups.inference.predict import ImagePrediction
from ltsoups.io.atomic import write_text_atomic

CSV_SUFFIXES = frozenset({".csv"})
JSONL_SUFFIXES = frozenset({".jsonl", ".json", ".ndjson"})


def check_output_suffix(path: Path) -> None:
    """Refuse an output whose suffix names no format we write, before any prediction runs."""
    if path.suffix.lower() not in CSV_SUFFIXES | JSONL_SUFFIXES:
        allowed = ", ".join(sorted(CSV_SUFFIXES | JSONL_SUFFIXES))
        raise ValueError(f"--out {path}: the suffix chooses the format; allowed: {allowed}")


def write_predictions(path: Path, predictions: Sequence[ImagePrediction], top_k: int) -> None:
    """CSV or JSON lines by ``path``'s suffix, written atomically."""
    check_output_suffix(path)
    if path.suffix.lower() in CSV_SUFFIXES:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", *(f"{field}_{k}" for k in range(1, top_k + 1) for field in ("class", "probability"))])
        for p in predictions:
            writer.writerow([str(p.path), *(v for pair in zip(p.classes, p.probabilities, strict=True) for v in pair)])
        text = buffer.getvalue()
    else:
        text = "".join(
            json.dumps(
                {
                    "path": str(p.path),
                    "top": [{"class": c, "probability": v} for c, v in zip(p.classes, p.probabilities, strict=True)],
                }
            )
            + "\n"
            for p in predictions
        )
    write_text_atomic(path, text)
