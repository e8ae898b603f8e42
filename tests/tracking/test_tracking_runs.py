"""`ltsoups run` logs the whole run tree: a parent, and a run per member, running soup, CR and evaluation.

The same tree from `dvc repro` (one process per stage, default sqlite store) is checked in tests/pipeline.
"""

from __future__ import annotations

import pytest
from served import SERVED_FACTORS, SERVED_MEMBERS


@pytest.mark.slow
def test_run_logs_every_run_to_a_server(served_run, run_tree, complete_tree) -> None:
    complete_tree(run_tree(served_run.experiment, served_run.uri), SERVED_MEMBERS, SERVED_FACTORS)
