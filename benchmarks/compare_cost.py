"""How close a comparison's wall time came to its members' training time per core.

    python benchmarks/compare_cost.py OUT WALL_SECONDS   # OUT: the comparison's folder

Sums the training seconds every distinct member of the store recorded (each trained once, on one worker),
divides by the cores, and prints the wall time's ratio to that bound: 1.0 would mean nothing but member
training, perfectly spread; the rest is start-up, merges, CRs, evaluations and the report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ltsoups.training.cost import TrainingCost
from ltsoups.workspace import ComparisonWorkspace


def main(out: Path, wall: float) -> None:
    store = ComparisonWorkspace(out).store
    costs = [TrainingCost.model_validate_json(path.read_text()) for path in store.root.glob("members/*/cost.json")]
    cores = os.cpu_count() or 1
    member_seconds = sum(cost.seconds for cost in costs)
    bound = member_seconds / cores
    print(f"{len(costs)} distinct members, {member_seconds:.0f} s of member training: {bound:.0f} s per core ({cores})")
    print(f"wall {wall:.0f} s; wall / member training per core = {wall / bound:.2f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
