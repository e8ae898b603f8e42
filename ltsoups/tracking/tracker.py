"""What each stage logs to MLflow: a child run per member, soup, CR and evaluation under the parent run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ltsoups.checkpoint import Checkpoint, sidecar_path
from ltsoups.closing import closed_after
from ltsoups.config import LtSoupsConfig
from ltsoups.plan import Plan, PlanError
from ltsoups.stages.evaluate import STAGE1_KEY
from ltsoups.stages.sections import MEMBER_SECTIONS
from ltsoups.tracking.datasets import DatasetInput, member_subset, training_split
from ltsoups.tracking.metrics import MetricStream
from ltsoups.tracking.model_logging import ModelOrigin, log_classifier, merged_members, register_version
from ltsoups.tracking.observer import MetricsObserver
from ltsoups.tracking.params import flat_params
from ltsoups.tracking.parent import common_tags, open_parent, pipeline_config
from ltsoups.tracking.runs import PARENT_TAG, RunRecord, create_run, end_run, reopen_run
from ltsoups.tracking.session import TrackingSession
from ltsoups.tracking.settings import tracking_uri
from ltsoups.tracking.system_metrics import Monitor, start_monitor
from ltsoups.tracking.ui import runs_table_url
from ltsoups.training.loop import TrainingObserver
from ltsoups.training.resume import ResumeState
from ltsoups.workspace import Workspace

if TYPE_CHECKING:
    from ltsoups.merge_search import SoupSearch
    from ltsoups.plan import PlanFiles
    from ltsoups.stages.evaluate import Evaluation
    from ltsoups.stages.member import MemberJob, MemberOutput
    from ltsoups.stages.merge import MergeOutput
    from ltsoups.stages.retrain_head import HeadOutput

# Beside a training's resume state: the MLflow run that training logs to, continued when it resumes.
RUN_FILE = "mlflow_run.json"


class PipelineTracker:
    """The MLflow side of one process of the pipeline (one DVC stage, or all of `ltsoups run`)."""

    def __init__(
        self,
        session: TrackingSession,
        config: LtSoupsConfig,
        workspace: Workspace,
        experiment: str | None = None,
        parent_id: str | None = None,
        owns_parent: bool = True,
        owns_session: bool = True,
    ) -> None:
        """A member's tracker logs under the parent but never ends it (``owns_parent`` False); in the driver's
        process it shares the driver's session, which reports what was not logged once (``owns_session`` False)."""
        self.session, self.config, self.workspace = session, config, workspace
        self.experiment, self.parent_id = experiment, parent_id
        self.owns_parent, self.owns_session = owns_parent, owns_session
        self._open: dict[str, MetricStream] = {}
        self._monitors: dict[str, Monitor] = {}
        self._since = _now()
        """when the work began that the soup and evaluation runs log once it is done: they start there"""
        self._finished = False

    @classmethod
    def open(cls, config: LtSoupsConfig, workspace: Workspace) -> PipelineTracker:
        """Connect to the configured store and find or start the parent run (a no-op tracker when disabled)."""
        if not config.tracking.enabled:
            return cls(TrackingSession.disabled(), config, workspace)
        session = TrackingSession.connect(tracking_uri(config.tracking))
        experiment, parent_id = open_parent(session, config, workspace)
        return cls(session, config, workspace, experiment, parent_id)

    @property
    def runs_url(self) -> str | None:
        """The experiment's runs table in MLflow's UI (see ui.py); None when nothing is logged."""
        if self.experiment is None or self.session.error is not None:
            return None
        return runs_table_url(self.session.uri, self.experiment)

    def member_tracking(self) -> MemberRuns | None:
        """How the processes that train this pipeline's members log them: as children of this parent run."""
        if not self.session.enabled:
            return None
        return MemberRuns(self.session.uri, self.experiment, self.parent_id, driver=self)

    # ----------------------------------------------------------------------------- parent artifacts

    def plan_written(self, files: PlanFiles) -> None:
        self._artifact(self.parent_id, files.path, "plan", "plan.json")

    def theta0_built(self, checkpoint: Checkpoint) -> None:
        self._artifact(self.parent_id, sidecar_path(checkpoint.path), "theta0", "theta0 sidecar")

    # -------------------------------------------------------------------------------------- members

    def start_member(self, job: MemberJob) -> TrainingObserver:
        """Open the member's run (or continue it when the member resumes); the observer logs its steps.

        The run is opened on the metric thread: the training does not wait for the server.
        """
        sections = self.config.model_dump(mode="json")
        manifest = job.manifest
        params = {
            "member": job.member,
            "factor": str(manifest.factor),
            "replica": str(manifest.replica),
            "seed": str(manifest.seed),
            "train_seed": str(job.seed),
            "manifest_sha256": manifest.content_sha256,
            "subset_size": str(manifest.size),
            **flat_params({name: sections[name] for name in MEMBER_SECTIONS}),
        }
        resume = self.workspace.member_resume(job.member)
        name, stage = f"member {job.member}", f"train-member@{job.member}"
        return self._observe(name, resume, "member", stage, params, lambda: self._datasets("source", job))

    def member_trained(self, output: MemberOutput) -> None:
        name = f"member {output.job.member}"
        result = output.result
        values = {"final_loss": result.final_loss, "steps": result.steps}
        values.update({f"val/{key}": value for key, value in output.val.headline().items()})
        if result.best_val is not None:
            values["val/best_balanced"] = result.best_val
        run_id = self._close_stream(name, values, result.steps)
        if run_id is None:
            return
        self._artifact(run_id, sidecar_path(output.checkpoint.path), "member", f"sidecar of {name}")
        end_run(self.session, run_id)

    # ---------------------------------------------------------------------------------------- merge

    def stage_started(self, stage: str) -> None:
        self._since = _now()

    def soups_merged(self, merged: MergeOutput) -> None:
        """One run per running soup (theta_0 folded with factors up to f), with its validation scores;
        and, after `merge --search`, a run with the whole lambda x N grid."""
        merger = flat_params({"merge": self.config.model_dump(mode="json")["merge"]})
        for index, soup in enumerate(merged.running, start=1):
            name = f"soup upto-f{soup.factor}"
            params = {"upto_factor": str(soup.factor), "factors_merged": str(index), **merger}
            run_id = self._child(name, "soup", "merge", params, start_time=self._since)
            if run_id is None:
                continue
            scores = {f"val/{key}": value for key, value in soup.val.headline().items()}
            self.session.log_values(run_id, scores, name)
            self._artifact(run_id, sidecar_path(soup.checkpoint.path), "soup", f"sidecar of {name}")
            end_run(self.session, run_id)
            if self.parent_id is not None:
                curve = {f"soup_{key}": value for key, value in scores.items()}
                self.session.log_values(self.parent_id, curve, "running soup curve", index)
        if merged.search is not None:
            self._search_logged(merged.search, merger)

    def _search_logged(self, search: SoupSearch, merger: dict[str, str]) -> None:
        """The scores as metrics (one series per row of the search: an N, or a step of the per-factor ascent;
        the step is lambda in thousandths), a table of every soup scored, the figure, search.json; the choice
        and the cost also on the parent run."""
        params = {"metric": search.metric.value, "mode": search.mode.value, **merger}
        run_id = self._child("soup search", "search", "merge", params, start_time=self._since)
        chosen = {
            **{f"search_{key}": value for key, value in search.choice().items()},
            **{f"search_{key}": value for key, value in search.cost.model_dump().items()},
        }
        if run_id is None:
            return
        for row in search.rows():
            for lam, score in row.scores.items():
                value = {f"search_val_{search.metric.value}_{row.key}": score}
                self.session.log_values(run_id, value, "search grid", round(lam * 1000))
        self.session.log_values(run_id, chosen, "search choice")
        rows = [search.point_json(point) for point in search.points]
        columns = {
            **{key: [_cell(row[key]) for row in rows] for key in rows[0] if key != "val"},
            **{f"val_{key}": [row["val"].get(key) for row in rows] for key in rows[0]["val"]},
        }
        self.session.log_table(run_id, columns, "search_grid.json", "search grid table")
        for path in (self.workspace.soup_search, self.workspace.soup_search_plot):
            self._artifact(run_id, path, "search", path.name)
        end_run(self.session, run_id)
        if self.parent_id is not None:
            self.session.log_values(self.parent_id, chosen, "search choice")

    # ------------------------------------------------------------------------------------------- CR

    def start_head(self) -> TrainingObserver:
        sections = self.config.model_dump(mode="json")
        params = {"seed": str(self.config.seed), **flat_params({"retrain_head": sections["retrain_head"]})}
        resume = self.workspace.final_resume
        return self._observe("retrain-head", resume, "retrain-head", "retrain-head", params, lambda: self._datasets())

    def head_retrained(self, output: HeadOutput) -> None:
        result = output.result
        values = {} if result is None else {"final_loss": result.final_loss, "steps": result.steps}
        run_id = self._close_stream("retrain-head", values, 0 if result is None else result.steps)
        if run_id is None:
            return
        self._artifact(run_id, sidecar_path(output.checkpoint.path), "final", "sidecar of the final model")
        end_run(self.session, run_id)

    # ------------------------------------------------------------------------------------- evaluate

    def evaluated(self, evaluation: Evaluation) -> None:
        """The evaluation run (test scores, calibration, weight change, per-class table); its headline numbers
        also go on the parent, with the final model's scores under plain names (balanced, few, ...) for the
        runs table."""
        workspace = self.workspace
        params = flat_params({"thresholds": self.config.model_dump(mode="json")["data"]["thresholds"]})
        run_id = self._child("evaluate", "evaluation", "evaluate", params, self._datasets(), self._since)
        self._finished = True
        if run_id is None:
            return
        headline = evaluation.metrics()
        scores = {f"{model}/{key}": value for model, values in headline.items() for key, value in values.items()}
        self.session.log_values(run_id, scores, "evaluate")
        if self.parent_id is not None:
            self.session.log_values(self.parent_id, {**scores, **evaluation.final.headline()}, "pipeline")
        table = evaluation.per_class()
        columns = {key: [row[key] for row in table] for key in table[0]} if table else {}
        self.session.log_table(run_id, columns, "per_class.json", "per-class table")
        results = {row.name: {**row.scores.headline(), **row.analyses()} for row in evaluation.rows}
        self.session.log_dict(run_id, results, "results.json", "results")
        for path in (workspace.metrics, workspace.groups):
            self._artifact(run_id, path, None, path.name)
        end_run(self.session, run_id)
        if self.parent_id is not None:
            self._model_logged(evaluation, self.parent_id)

    def _model_logged(self, evaluation: Evaluation, parent_id: str) -> None:
        """The final classifier as the parent's MLflow Model, and a registered version with tracking.register."""
        if self.experiment is None:
            return
        final, soup = evaluation.final_row.checkpoint, evaluation.row(STAGE1_KEY).checkpoint
        members = merged_members(soup, Plan.read(self.workspace.plan), self.workspace)
        records = [RunRecord.load(self.workspace.member_resume(member).with_name(RUN_FILE)) for member in members]
        origin = ModelOrigin(
            **common_tags(self.config),
            weights_sha256=final.sidecar.weights_sha256,
            members=members,
            member_runs=tuple(r.run_id for r in records if r is not None and r.tracking_uri == self.session.uri),
        )
        params = flat_params(pipeline_config(self.config))
        scores = {f"final/{key}": value for key, value in evaluation.final.headline().items()}
        model_id = log_classifier(self.session, self.experiment, parent_id, final, origin, params, scores)
        name = self.config.tracking.registered_model
        if model_id is not None and name is not None:
            register_version(self.session, name, model_id, parent_id, origin)

    # -------------------------------------------------------------------------------------- closing

    def close(self, error: BaseException | None = None) -> None:
        """End the open runs (FAILED with the error when there is one), the parent too after evaluate."""
        for name in list(self._open):
            run_id = self._close_stream(name)
            if run_id is not None:
                end_run(self.session, run_id, error)
        if self.owns_parent and self.parent_id is not None and (error is not None or self._finished):
            end_run(self.session, self.parent_id, error)
        if self.owns_session:
            self.session.report()

    # -------------------------------------------------------------------------------------- helpers

    def _child(
        self,
        name: str,
        kind: str,
        stage: str,
        params: dict[str, str],
        data: Sequence[DatasetInput] = (),
        start_time: int | None = None,
    ) -> str | None:
        """A run under the parent with the data it used as dataset inputs; ``start_time`` when its work began
        before it could be opened (None: now)."""
        if self.parent_id is None or self.experiment is None:
            self.session.dropped(f"{name} run")
            return None
        tags = {
            **common_tags(self.config),
            PARENT_TAG: self.parent_id,
            "kind": kind,
            "dvc_stage": os.environ.get("DVC_STAGE", stage),
        }
        run_id = create_run(self.session, self.experiment, name, tags, params, start_time)
        if run_id is not None:
            self.session.log_inputs(run_id, data, f"datasets of {name}")
        return run_id

    def _datasets(self, full_split: str = "train", job: MemberJob | None = None) -> list[DatasetInput]:
        """The training split the plan was drawn from (what the run did with it: ``full_split``) and a member's
        subset; none when the plan cannot be read (the stage itself says why)."""
        path = self.workspace.plan
        try:
            data = [training_split(Plan.read(path), path, full_split)]
        except (OSError, ValueError, PlanError):
            return []
        if job is not None:
            data.append(member_subset(job.manifest, job.manifest_path))
        return data

    def _observe(
        self,
        name: str,
        resume_state: Path,
        kind: str,
        stage: str,
        params: dict[str, str],
        data: Callable[[], list[DatasetInput]],
    ) -> TrainingObserver:
        """A metric stream whose thread opens the training's run: the interrupted one if it resumes, else a new one
        (with its ``data``, read on that thread); MLflow's system-metrics monitor follows the run when it is on."""
        # Decided now: once the training runs, it writes resume states of its own.
        record = RunRecord.load(resume_state.with_name(RUN_FILE)) if ResumeState(resume_state).exists() else None

        def open_run() -> str | None:
            run_id = self._reopen(record) if record is not None else None
            resumed = run_id is not None
            if run_id is None:
                run_id = self._child(name, kind, stage, params, data())
                self._remember(run_id, resume_state)
            if run_id is not None:
                monitor = start_monitor(self.session.uri, run_id, resumed)
                if monitor is not None:
                    self._monitors[name] = monitor
            return run_id

        stream = MetricStream(self.session, open_run, f"step metrics of {name}")
        self._open[name] = stream
        return MetricsObserver(stream)

    def _reopen(self, record: RunRecord) -> str | None:
        """The interrupted training's run, set RUNNING under the current parent; None if it is gone."""
        if self.parent_id is None or (record.tracking_uri, record.experiment_id) != (self.session.uri, self.experiment):
            return None
        run = self.session.find_run(record.run_id)
        if run is None or run.info.lifecycle_stage != "active":
            return None
        reopen_run(self.session, run, self.parent_id)
        return record.run_id

    def _remember(self, run_id: str | None, resume_state: Path) -> None:
        if run_id is not None and self.experiment is not None:
            config_hash = common_tags(self.config)["config_hash"]
            record = RunRecord(run_id, self.experiment, self.config.tracking.experiment, self.session.uri, config_hash)
            record.save(resume_state.with_name(RUN_FILE))

    def _close_stream(self, name: str, final: dict[str, float] | None = None, step: int = 0) -> str | None:
        """Send ``final`` values with the last metrics and stop the run's stream; its run id, if it was opened."""
        stream = self._open.pop(name, None)
        if stream is None:
            return None
        for key, value in (final or {}).items():
            stream.log(key, value, step)
        run_id = stream.close()
        monitor = self._monitors.pop(name, None)
        if monitor is not None:
            monitor.finish()
        return run_id

    def _artifact(self, run_id: str | None, path: Path, folder: str | None, what: str) -> None:
        if run_id is None:
            self.session.dropped(what)
            return
        self.session.log_artifact(run_id, path, folder, what)


def _cell(value: object) -> object:
    """A table cell: a per-factor search's list of lambdas as one text."""
    return ", ".join(f"{item:g}" for item in value) if isinstance(value, list) else value


def _now() -> int:
    """Milliseconds since the epoch, as MLflow times runs."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class MemberRuns:
    """The driver's store, experiment and parent run, sent to every worker that trains a member.

    A worker logs its member as a child of the parent, whichever process or machine it is; a store it
    cannot reach costs it the logs, never the member's outputs (see TrackingSession).
    """

    uri: str
    experiment: str | None
    parent_id: str | None
    driver: PipelineTracker | None = field(default=None, compare=False, repr=False)
    """The driver's tracker, while this stays in the driver's process; a worker gets the three values above."""

    def __reduce__(self) -> tuple[type[MemberRuns], tuple[str, str | None, str | None]]:
        return MemberRuns, (self.uri, self.experiment, self.parent_id)

    def close_left_open(self, workspace: Workspace, members: Sequence[str], status: str, error: str = "") -> None:
        """End ``status`` the runs of ``members`` still RUNNING: a worker killed past its retries, or a store that
        was away when the member ended, leaves its run open; the driver, or the next batch, closes it."""
        session = TrackingSession.connect(self.uri)  # a new session: the store may be back
        for member in members:
            record = RunRecord.load(workspace.member_resume(member).with_name(RUN_FILE))
            if record is None or record.tracking_uri != self.uri:
                continue
            run = session.find_run(record.run_id)
            if run is None or run.info.status != "RUNNING":
                continue
            if error:
                session.set_tag(record.run_id, "error", error[:8000], "error tag")
            session.set_tag(record.run_id, "closed_by", "driver (the member's process did not close it)", "closing")
            session.terminate(record.run_id, status, f"end of a run left open ({status})")
        session.report()

    def open(self, config: LtSoupsConfig, workspace: Workspace) -> PipelineTracker:
        if self.driver is not None:  # one session per process: a store that failed once is not tried again
            session, own = self.driver.session, False
        else:
            session, own = TrackingSession.connect(self.uri), True
        return PipelineTracker(
            session, config, workspace, self.experiment, self.parent_id, owns_parent=False, owns_session=own
        )


@contextmanager
def pipeline_tracking(config: LtSoupsConfig, workspace: Workspace) -> Iterator[PipelineTracker]:
    """A tracker for the block; an exception ends its open runs (and the parent) FAILED, and propagates."""
    with closed_after(PipelineTracker.open(config, workspace)) as tracker:
        yield tracker
