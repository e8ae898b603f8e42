"""What each stage logs to MLflow: a child run per member, soup, CR and evaluation under the parent run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ltsoups.checkpoint import Checkpoint, sidecar_path
from ltsoups.config import LtSoupsConfig
from ltsoups.plan import read_manifest
from ltsoups.tracking.metrics import MetricStream
from ltsoups.tracking.observer import MetricsObserver
from ltsoups.tracking.params import flat_params
from ltsoups.tracking.parent import common_tags, open_parent
from ltsoups.tracking.runs import PARENT_TAG, RunRecord, create_run, end_run, log_values, reopen_run
from ltsoups.tracking.session import TrackingSession
from ltsoups.tracking.settings import tracking_uri
from ltsoups.training.batches import derive_seed
from ltsoups.training.loop import TrainingObserver
from ltsoups.training.resume import ResumeState
from ltsoups.workspace import Workspace

if TYPE_CHECKING:
    from ltsoups.plan import PlanFiles
    from ltsoups.stages.evaluate import ResultRow
    from ltsoups.stages.member import MemberOutput
    from ltsoups.stages.merge import RunningSoup
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
    ) -> None:
        self.session, self.config, self.workspace = session, config, workspace
        self.experiment, self.parent_id = experiment, parent_id
        self._open: dict[str, MetricStream] = {}
        self._finished = False

    @classmethod
    def open(cls, config: LtSoupsConfig, workspace: Workspace) -> PipelineTracker:
        """Connect to the configured store and find or start the parent run (a no-op tracker when disabled)."""
        if not config.tracking.enabled:
            return cls(TrackingSession.disabled(), config, workspace)
        session = TrackingSession.connect(tracking_uri(config.tracking))
        experiment, parent_id = open_parent(session, config, workspace)
        return cls(session, config, workspace, experiment, parent_id)

    # ----------------------------------------------------------------------------- parent artifacts

    def plan_written(self, files: PlanFiles) -> None:
        self._artifact(self.parent_id, files.plan, "plan", "plan.json")

    def theta0_built(self, checkpoint: Checkpoint) -> None:
        self._artifact(self.parent_id, sidecar_path(checkpoint.path), "theta0", "theta0 sidecar")

    # -------------------------------------------------------------------------------------- members

    def start_member(self, member: str) -> TrainingObserver:
        """Open the member's run (or continue it when the member resumes); the observer logs its steps.

        The run is opened on the metric thread: the training does not wait for the server.
        """
        name, params = f"member {member}", self._member_params(member)
        return self._observe(name, self.workspace.member_resume(member), "member", f"train-member@{member}", params)

    def member_trained(self, output: MemberOutput) -> None:
        name = f"member {output.checkpoint.sidecar['member']}"
        result = output.result
        values = {"final_loss": result.final_loss, "steps": result.steps}
        if result.best_val is not None:
            values["val/best_balanced"] = result.best_val
        run_id = self._close_stream(name, values, result.steps)
        if run_id is None:
            return
        self._artifact(run_id, sidecar_path(output.checkpoint.path), "member", f"sidecar of {name}")
        end_run(self.session, run_id)

    def _member_params(self, member: str) -> dict[str, str]:
        config = self.config
        sections = config.model_dump(mode="json")
        params = flat_params({name: sections[name] for name in ("data", "backbone", "head", "train")})
        try:
            manifest = read_manifest(self.workspace.manifest(member))
        except ValueError:
            return {"member": member, **params}  # the training itself reports the bad manifest
        return {
            "member": member,
            "factor": str(manifest["factor"]),
            "replica": str(manifest["replica"]),
            "seed": str(manifest["seed"]),
            "train_seed": str(derive_seed(config.seed, manifest["factor"], manifest["replica"])),
            "manifest_sha256": manifest["content_sha256"],
            "subset_size": str(manifest["size"]),
            **params,
        }

    # ---------------------------------------------------------------------------------------- merge

    def soups_merged(self, running: list[RunningSoup]) -> None:
        """One run per running soup (theta_0 folded with factors up to f), with its validation scores."""
        merger = flat_params({"merge": self.config.model_dump(mode="json")["merge"]})
        for index, soup in enumerate(running, start=1):
            name = f"soup upto-f{soup.factor}"
            params = {"upto_factor": str(soup.factor), "factors_merged": str(index), **merger}
            run_id = self._child(name, "soup", "merge", params)
            if run_id is None:
                continue
            scores = {f"val/{key}": value for key, value in soup.val.headline().items()}
            log_values(self.session, run_id, name, scores)
            self._artifact(run_id, sidecar_path(soup.checkpoint.path), "soup", f"sidecar of {name}")
            end_run(self.session, run_id)
            if self.parent_id is not None:
                curve = {f"soup_{key}": value for key, value in scores.items()}
                log_values(self.session, self.parent_id, "running soup curve", curve, index)

    # ------------------------------------------------------------------------------------------- CR

    def start_head(self) -> TrainingObserver:
        sections = self.config.model_dump(mode="json")
        params = {"seed": str(self.config.seed), **flat_params({"retrain_head": sections["retrain_head"]})}
        return self._observe("retrain-head", self.workspace.final_resume, "retrain-head", "retrain-head", params)

    def head_retrained(self, output: HeadOutput) -> None:
        result = output.result
        values = {} if result is None else {"final_loss": result.final_loss, "steps": result.steps}
        run_id = self._close_stream("retrain-head", values, 0 if result is None else result.steps)
        if run_id is None:
            return
        self._artifact(run_id, sidecar_path(output.checkpoint.path), "final", "sidecar of the final model")
        end_run(self.session, run_id)

    # ------------------------------------------------------------------------------------- evaluate

    def evaluated(self, rows: list[ResultRow]) -> None:
        """The evaluation run (test scores, per-class table); its headline scores also go on the parent."""
        workspace = self.workspace
        params = flat_params({"thresholds": self.config.model_dump(mode="json")["data"]["thresholds"]})
        run_id = self._child("evaluate", "evaluation", "evaluate", params)
        self._finished = True
        if run_id is None:
            return
        headline = json.loads(workspace.metrics.read_text())
        scores = {f"{model}/{key}": value for model, values in headline.items() for key, value in values.items()}
        log_values(self.session, run_id, "evaluate", scores)
        if self.parent_id is not None:
            log_values(self.session, self.parent_id, "pipeline", scores)
        table = json.loads(workspace.per_class.read_text())
        columns = {key: [row[key] for row in table] for key in table[0]} if table else {}
        self.session.call("per-class table", lambda client: client.log_table(run_id, columns, "per_class.json"))
        results = {row.name: row.scores.headline() for row in rows}
        self.session.call("results", lambda client: client.log_dict(run_id, results, "results.json"))
        for path in (workspace.metrics, workspace.groups):
            self._artifact(run_id, path, None, path.name)
        end_run(self.session, run_id)

    # -------------------------------------------------------------------------------------- closing

    def close(self, error: BaseException | None = None) -> None:
        """End the open runs (FAILED with the error when there is one), the parent too after evaluate."""
        for name in list(self._open):
            run_id = self._close_stream(name)
            if run_id is not None:
                end_run(self.session, run_id, error)
        if self.parent_id is not None and (error is not None or self._finished):
            end_run(self.session, self.parent_id, error)
        self.session.report()

    # -------------------------------------------------------------------------------------- helpers

    def _child(self, name: str, kind: str, stage: str, params: dict[str, str]) -> str | None:
        if self.parent_id is None or self.experiment is None:
            self.session.dropped(f"{name} run")
            return None
        tags = {
            **common_tags(self.config),
            PARENT_TAG: self.parent_id,
            "kind": kind,
            "dvc_stage": os.environ.get("DVC_STAGE", stage),
        }
        return create_run(self.session, self.experiment, name, tags, params)

    def _observe(
        self, name: str, resume_state: Path, kind: str, stage: str, params: dict[str, str]
    ) -> TrainingObserver:
        """A metric stream whose thread opens the training's run: the interrupted one if it resumes, else a new one."""
        # Decided now: once the training runs, it writes resume states of its own.
        record = RunRecord.load(resume_state.with_name(RUN_FILE)) if ResumeState(resume_state).exists() else None

        def open_run() -> str | None:
            run_id = self._reopen(record) if record is not None else None
            if run_id is None:
                run_id = self._child(name, kind, stage, params)
                self._remember(run_id, resume_state)
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
        return stream.close()

    def _artifact(self, run_id: str | None, path: Path, folder: str | None, what: str) -> None:
        if run_id is None:
            self.session.dropped(what)
            return
        self.session.call(what, lambda client: client.log_artifact(run_id, str(path), folder))


@contextmanager
def pipeline_tracking(config: LtSoupsConfig, workspace: Workspace) -> Iterator[PipelineTracker]:
    """A tracker for the block; an exception ends its open runs (and the parent) FAILED, and propagates."""
    tracker = PipelineTracker.open(config, workspace)
    try:
        yield tracker
    except BaseException as err:
        tracker.close(err)
        raise
    tracker.close()
