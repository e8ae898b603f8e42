"""MLflow for `ltsoups compare`: one parent run per comparison, a child per method x seed (tags method, seed),
so that MLflow's compare view lines the runs up."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ltsoups.closing import closed_after
from ltsoups.config import LtSoupsConfig
from ltsoups.tracking.params import flat_params
from ltsoups.tracking.parent import common_tags, pipeline_config
from ltsoups.tracking.runs import PARENT_TAG, create_run, end_run
from ltsoups.tracking.session import TrackingSession
from ltsoups.tracking.settings import tracking_uri

if TYPE_CHECKING:
    from ltsoups.compare.finish import MethodSeed
    from ltsoups.compare.report import ComparisonReport
    from ltsoups.compare.results import MethodResult

COST_KEYS = ("steps", "samples", "seconds", "peak_memory_bytes")


def metric_prefix(method: str) -> str:
    """``method`` as the head of MLflow metric names, which allow no '+' (full-ft+cr -> "full-ft plus cr");
    method names hold no space, so no two methods share a prefix."""
    return method.replace("+", " plus ")


class ComparisonTracker:
    def __init__(self, session: TrackingSession, experiment: str | None, parent_id: str | None) -> None:
        self.session, self.experiment, self.parent_id = session, experiment, parent_id

    @classmethod
    def open(cls, config: LtSoupsConfig, settings: Mapping[str, str], label: str = "") -> ComparisonTracker:
        """The parent run of a comparison of ``config`` (the user's params) with ``settings`` (methods, seeds, ...)."""
        if not config.tracking.enabled:
            return cls(TrackingSession.disabled(), None, None)
        session = TrackingSession.connect(tracking_uri(config.tracking))
        experiment = session.experiment(config.tracking.experiment)
        if experiment is None:
            return cls(session, None, None)
        name = f"comparison {label + ' ' if label else ''}{time.strftime('%Y-%m-%d %H:%M:%S')}"
        tags = {**common_tags(config), "kind": "comparison", **{f"compare.{k}": v for k, v in settings.items()}}
        params = {**flat_params(pipeline_config(config)), **{f"compare.{k}": v for k, v in settings.items()}}
        return cls(session, experiment, create_run(session, experiment, name, tags, params))

    def run_finished(self, run: MethodSeed, result: MethodResult) -> None:
        """A child run with the method's config, its test scores, calibration, weight change and cost."""
        if self.parent_id is None or self.experiment is None:
            self.session.dropped(f"{run.label} run")
            return
        tags = {
            **common_tags(run.config),
            PARENT_TAG: self.parent_id,
            "kind": "method-seed",
            "method": run.method.name,
            "seed": str(run.seed),
        }
        params = {
            **flat_params(pipeline_config(run.config)),
            "method": run.method.name,
            "method.settings": "; ".join(run.method.settings) or "(none)",
            "model": result.model,
        }
        run_id = create_run(self.session, self.experiment, run.label, tags, params)
        if run_id is None:
            return
        cost = result.cost.model_dump()
        values = {
            **result.scores,
            **result.calibration,
            **(result.weight_change or {}),
            **{f"cost/{key}": float(cost[key]) for key in COST_KEYS if cost[key] is not None},
            "models_at_inference": result.models_at_inference,
        }
        self.session.log_values(run_id, values, run.label)
        self.session.log_dict(run_id, result.model_dump(mode="json"), "result.json", f"result of {run.label}")
        end_run(self.session, run_id)

    def report_written(self, report: ComparisonReport, files: Sequence[Path]) -> None:
        """Per method its seed-mean numbers and paired differences on the parent; the report files as artifacts."""
        if self.parent_id is None:
            self.session.dropped("comparison report")
            return
        values = {f"{metric_prefix(m.method)}/{key}": s.mean for m in report.methods for key, s in m.metrics.items()}
        for row in report.paired:
            values[f"{metric_prefix(row.method)}/delta_{row.metric}"] = row.difference
            values[f"{metric_prefix(row.method)}/delta_{row.metric}_p"] = row.p_value
        self.session.log_values(self.parent_id, values, "comparison")
        for path in files:
            self.session.log_artifact(self.parent_id, path, "report", path.name)

    def close(self, error: BaseException | None = None) -> None:
        if self.parent_id is not None:
            end_run(self.session, self.parent_id, error)
        self.session.report()


@contextmanager
def comparison_tracking(
    config: LtSoupsConfig, settings: Mapping[str, str], label: str = ""
) -> Iterator[ComparisonTracker]:
    """A comparison's tracker for the block; an exception ends the parent FAILED (KILLED on Ctrl-C) and propagates."""
    with closed_after(ComparisonTracker.open(config, settings, label)) as tracker:
        yield tracker
