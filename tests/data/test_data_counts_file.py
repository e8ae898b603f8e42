"""Written class counts are what `read_counts` (and `ltsoups plan --counts`) read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltsoups.data.counts_file import read_counts, write_counts
from ltsoups.registry import PluginKind, installed_registry


def test_written_counts_round_trip_through_read_counts(tmp_path: Path) -> None:
    dataset = installed_registry().create(PluginKind.DATASET, "cifar100-lt", {"root": str(tmp_path / "absent")})
    path = tmp_path / "out" / "counts.json"
    written = write_counts(path, dataset.class_counts())
    assert np.array_equal(read_counts(path), written)
    assert int(written.sum()) == 10_847
    assert path.read_text().startswith("[500, 477, 455, ")
