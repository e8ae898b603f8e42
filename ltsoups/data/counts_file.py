"""The class-counts file: a JSON list of training counts per class, written by `prepare` and
`ltsoups counts`, read by `ltsoups plan --counts`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ltsoups.io.atomic import write_text_atomic


def write_counts(path: Path, counts: np.ndarray) -> np.ndarray:
    """Counts per class as a one-line JSON list of integers; returns them as int64."""
    counts = np.asarray(counts, dtype=np.int64)
    write_text_atomic(Path(path), json.dumps([int(n) for n in counts]) + "\n")
    return counts


def read_counts(path: Path) -> np.ndarray:
    """Class counts from a JSON list of non-negative integers (or {"counts": [...]})."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read class counts ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: class counts must be a JSON text file (byte {err.start} is not UTF-8)") from err
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as err:  # ValueError: JSONDecodeError, integers too long to convert
        raise ValueError(f"{path}: class counts are not valid JSON ({err})") from err
    if isinstance(raw, dict):
        raw = raw.get("counts")
    if not isinstance(raw, list) or not raw or not all(isinstance(n, int) and n >= 0 for n in raw):
        raise ValueError(f"{path}: class counts must be a non-empty JSON list of non-negative integers")
    if len(raw) < 2:
        raise ValueError(f"{path}: need counts for at least 2 classes")
    counts = np.array(raw, dtype=np.int64)
    if counts.min() == 0:
        raise ValueError(f"{path}: class {int(np.argmin(counts))} has no samples")
    return counts
