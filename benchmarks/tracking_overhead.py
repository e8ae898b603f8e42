"""What MLflow tracking costs one member's training, against a real `mlflow server` on 127.0.0.1.

    OMP_NUM_THREADS=1 python benchmarks/tracking_overhead.py [--params params.yaml] [--member f8-r0]

Runs `prepare` (which starts the pipeline's parent run) and `theta0`, then trains one member of the
params file (default: the embedded default) with tracking, and times everything tracking does on
the training's path, as the member's own DVC stage would: finding the parent run, opening the
member's run with its params, every observer call, the final flush, the sidecar artifact and the
end of the run. Prints that time against the training time (the bar: under 2%), and what one
request per logged value would have cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ltsoups.config import load_config
from ltsoups.stages.context import RunContext
from ltsoups.stages.member import member_job, train_member
from ltsoups.stages.prepare import prepare
from ltsoups.stages.theta0 import build_theta0
from ltsoups.tracking import PipelineTracker, pipeline_tracking
from ltsoups.training.loop import TrainingObserver
from ltsoups.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite's MLflow server
from mlflow_server import local_mlflow_server


class Stopwatch:
    """Adds up the time spent inside ``with stopwatch:`` blocks."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


class TimedObserver:
    """Forwards to the tracking observer and charges its calls to the tracking stopwatch."""

    def __init__(self, inner: TrainingObserver, stopwatch: Stopwatch) -> None:
        self.inner, self.stopwatch, self.steps = inner, stopwatch, 0

    def on_start(self, total_steps: int, first_step: int) -> None:
        with self.stopwatch:
            self.inner.on_start(total_steps, first_step)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.steps += 1
        with self.stopwatch:
            self.inner.on_step(step, loss, lr)

    def on_validation(self, step: int, score: float) -> None:
        with self.stopwatch:
            self.inner.on_validation(step, score)


def request_latency(uri: str, calls: int = 20) -> float:
    """Median seconds of one log_metric request: what logging every value at once would cost each time."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("latency")).info.run_id
    times = []
    for step in range(calls):
        start = time.perf_counter()
        client.log_metric(run_id, "probe", 1.0, step=step)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--member", default="f8-r0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, local_mlflow_server(Path(tmp) / "server") as uri:
        overrides = [f"workdir={tmp}/outputs", f"tracking.uri={uri}", "tracking.experiment=tracking-overhead"]
        config = load_config(args.params, overrides)
        workspace, context = Workspace(Path(config.workdir)), RunContext(config)
        start = time.perf_counter()
        import mlflow  # noqa: F401 - once per stage process, whatever the training

        import_seconds = time.perf_counter() - start
        with pipeline_tracking(config, workspace) as first_stage:  # as `prepare` does: the parent run starts
            first_stage.plan_written(prepare(context, workspace))
        build_theta0(context, workspace)
        latency = request_latency(uri)

        around, during = Stopwatch(), Stopwatch()
        job = member_job(context, workspace, args.member)
        with around:  # what the member's own stage does: find the parent, open its run
            tracker = PipelineTracker.open(config, workspace)
            observer = TimedObserver(tracker.start_member(job), during)
        start = time.perf_counter()
        output = train_member(context, workspace, job, observer)
        elapsed = time.perf_counter() - start
        with around:
            tracker.member_trained(output)
            tracker.close()

    training = elapsed - during.seconds
    tracking = around.seconds + during.seconds
    per_value = 2 * observer.steps * latency  # loss and lr, one request each
    print(f"member {args.member}: {observer.steps} steps, training {training:.2f} s")
    print(
        f"tracking on the training's path: {tracking:.3f} s = {100 * tracking / training:.2f}% of training "
        f"(opening and closing its runs {around.seconds:.3f} s, {observer.steps} steps {during.seconds:.3f} s)"
    )
    print(
        f"one log request to the server: {1000 * latency:.0f} ms; a request per value would cost "
        f"{per_value:.1f} s = {100 * per_value / training:.0f}% of training"
    )
    print(f"once per stage process, whatever the training: importing MLflow {import_seconds:.2f} s")


if __name__ == "__main__":
    main()
