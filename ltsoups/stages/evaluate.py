"""Stage `evaluate`: test accuracy of theta_0, each running soup, stage 1 and stage 1 + CR."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ltsoups.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from ltsoups.data.stats import ClassStats
from ltsoups.evaluation import Scores, evaluate
from ltsoups.io.atomic import write_json_atomic
from ltsoups.provenance import code_version
from ltsoups.stages.context import RunContext
from ltsoups.stages.sections import HEAD_SECTIONS
from ltsoups.workspace import Workspace


@dataclass(frozen=True)
class ResultRow:
    name: str
    scores: Scores


def _test_scores(context: RunContext, checkpoint: Checkpoint) -> Scores:
    model, backbone = context.classifier_from(checkpoint)
    preprocess = context.preprocess(backbone, context.config.train.optim)
    return evaluate(model, context.splits.test, preprocess, context.train_counts, context.config.data.thresholds)


def evaluate_all(context: RunContext, workspace: Workspace) -> list[ResultRow]:
    """Score every model of the run on the test split and write metrics, per-class and group files."""
    plan = json.loads(workspace.plan.read_text())
    factors = [row["factor"] for row in plan["factors"]]
    models = [("theta0 (zero-shot)", open_checkpoint(workspace.theta0, expect_kind="theta0"))]
    models += [(f"soup up to 2^{f.bit_length() - 1}", open_checkpoint(workspace.running_soup(f))) for f in factors[:-1]]
    models.append(("stage 1 (soup)", open_checkpoint(workspace.soup, expect_kind="soup")))
    soup = models[-1][1]
    final = open_checkpoint(workspace.final, expect_kind="final")
    if final.sidecar.get("soup_sha256") != soup.sidecar["weights_sha256"]:
        raise CheckpointError(f"{final.path} was made from another soup than {soup.path}; rerun retrain-head")
    if final.sidecar.get("retrained", True):
        models.append(("stage 1 + CR", final))
    rows = [ResultRow(name, _test_scores(context, checkpoint)) for name, checkpoint in models]
    weights = {name: checkpoint.sidecar["weights_sha256"] for name, checkpoint in models}
    _write_outputs(context, workspace, rows, weights)
    return rows


def read_results(workspace: Workspace) -> list[tuple[str, dict[str, float]]]:
    """The rows the evaluate stage wrote, in order: (model name, headline accuracies)."""
    return [(row["model"], row["scores"]) for row in json.loads(workspace.results.read_text())["rows"]]


def _write_outputs(context: RunContext, workspace: Workspace, rows: list[ResultRow], weights: dict[str, str]) -> None:
    by_name = {row.name: row.scores for row in rows}
    results = {
        "rows": [
            {"model": row.name, "scores": row.scores.headline(), "weights_sha256": weights[row.name]} for row in rows
        ],
        "config_sha256": context.config.section_hash(*HEAD_SECTIONS),
        "code_version": code_version(),
    }
    write_json_atomic(workspace.results, results)
    stage1 = by_name["stage 1 (soup)"]
    final = by_name.get("stage 1 + CR", stage1)
    write_json_atomic(
        workspace.metrics,
        {
            "zero_shot": by_name["theta0 (zero-shot)"].headline(),
            "stage1": stage1.headline(),
            "final": final.headline(),
        },
    )
    counts = context.train_counts
    stats = ClassStats(counts, context.config.data.thresholds)
    groups = stats.groups()
    names = context.splits.train.class_names
    write_json_atomic(
        workspace.per_class,
        [
            {
                "class": names[c],
                "train_count": int(counts[c]),
                "group": groups[c].value,
                "zero_shot": by_name["theta0 (zero-shot)"].per_class[c],
                "stage1": stage1.per_class[c],
                "final": final.per_class[c],
            }
            for c in range(len(names))
        ],
    )
    write_json_atomic(
        workspace.groups,
        [
            {"model": row.name, "group": group, "accuracy": value}
            for row in rows
            for group, value in row.scores.headline().items()
            if group in ("many", "medium", "few")
        ],
    )
