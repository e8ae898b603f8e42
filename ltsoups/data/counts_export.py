"""Export a dataset's training counts as the JSON list `read_counts` and `ltsoups plan --counts` read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ltsoups.contracts import Dataset
from ltsoups.io.atomic import write_text_atomic


def counts_json(counts: np.ndarray) -> str:
    """Counts per class as a one-line JSON list of integers, newline-terminated."""
    return json.dumps([int(n) for n in counts]) + "\n"


def export_class_counts(dataset: Dataset, path: Path) -> np.ndarray:
    """Write ``dataset``'s training counts (no image is loaded) to ``path``; returns them."""
    counts = np.asarray(dataset.class_counts(), dtype=np.int64)
    write_text_atomic(Path(path), counts_json(counts))
    return counts
