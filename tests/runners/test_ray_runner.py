"""The `ray` runner on a real local Ray cluster: the same bits as `local`, faults, and tracking from the workers.

One cluster of 2 CPUs serves the module (it takes seconds to start); each member is a task of 1 CPU,
so two train at once, in worker processes of their own.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from member_runs import Probe, Run, torch_threads
from tiny_config import ONE_ROUND_MEMBERS

from ltsoups.checkpoint import save_checkpoint
from ltsoups.contracts import MemberFailed, MemberFollower, PluginParams, Runner, Worker
from ltsoups.plugins.ray_runner import RayRunner, RayRunnerParams
from ltsoups.plugins.runners import LocalRunner
from ltsoups.runners.batch import TrainedMembers, train_members
from ltsoups.runners.task import MemberTracking
from ltsoups.stages.context import RunContext
from ltsoups.tracking import pipeline_tracking
from ltsoups.tracking.tracker import MemberRuns

ray = pytest.importorskip("ray", reason="the ray runner's tests need Ray: pip install 'ltsoups[ray]'")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A fresh local cluster (never another user's); its workers import ltsoups from this checkout."""
    from ltsoups.plugins.ray_runner import WORKER_SETUP_HOOK

    setup = {"worker_process_setup_hook": WORKER_SETUP_HOOK}  # as the runner starts its clusters
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, runtime_env=setup)

    @ray.remote
    def ltsoups_source() -> tuple[str, bool]:
        import sys

        import ltsoups

        return ltsoups.__file__, "torch._dynamo" in sys.modules

    import ltsoups

    source, prepared = ray.get(ltsoups_source.remote())
    assert source == ltsoups.__file__, "the workers would run other code than this"
    assert prepared, "the worker setup hook did not run"
    yield
    ray.shutdown()


def train(
    run: Run,
    runner: Runner,
    *overrides: str,
    members: list[str] | None = None,
    follower: MemberFollower | None = None,
    tracking: MemberTracking | None = None,
) -> TrainedMembers:
    return train_members(RunContext(run.config(*overrides)), run.workspace, members, runner, follower, tracking)


def tracked(experiment: str, uri: str) -> list[str]:
    return ["tracking.enabled=true", f"tracking.uri={uri}", f"tracking.experiment={experiment}"]


def runs_of(experiment: str, uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=1000) if found else []


LOCAL = LocalRunner(PluginParams())
RAY = RayRunner(RayRunnerParams())


@pytest.fixture(scope="module")
def local_digests(planned_run: Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every member trained by the local runner on one thread (what a ray worker of 1 CPU uses)."""
    run = planned_run.clone(tmp_path_factory.mktemp("local") / "run")
    with torch_threads(1):
        assert len(train(run, LOCAL).trained) == len(ONE_ROUND_MEMBERS)
    return run.member_digests()


@pytest.fixture(scope="module")
def ray_run(planned_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return planned_run.clone(tmp_path_factory.mktemp("ray") / "run")


def test_members_trained_on_ray_are_bit_identical_and_children_of_one_parent(
    ray_cluster: None, ray_run: Run, local_digests: dict[str, str], mlflow_server: str
) -> None:
    config = ray_run.config(*tracked("ray-batch", mlflow_server))
    probe = Probe()
    with pipeline_tracking(config, ray_run.workspace) as tracking:
        done = train_members(RunContext(config), ray_run.workspace, None, RAY, probe, tracking.member_tracking())
    assert sorted(output.job.member for output in done.trained) == ONE_ROUND_MEMBERS
    assert ray_run.member_digests() == local_digests
    trainers = {worker.pid for attempts in probe.workers.values() for worker in attempts}
    assert os.getpid() not in trainers  # every member trained in a worker process, not here
    assert sorted(probe.finished_members) == ONE_ROUND_MEMBERS

    runs = runs_of("ray-batch", mlflow_server)
    (parent,) = [run for run in runs if run.data.tags["kind"] == "pipeline"]
    members = {run.data.params["member"]: run for run in runs if run.data.tags["kind"] == "member"}
    assert sorted(members) == ONE_ROUND_MEMBERS
    for member, run in members.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc_stage"] == f"train-member@{member}"
        assert run.data.metrics["steps"] >= 3 and "loss" in run.data.metrics


def test_a_second_batch_trains_nothing(ray_cluster: None, ray_run: Run, mlflow_server: str) -> None:
    before = ray_run.member_digests()
    probe = Probe()
    done = train(ray_run, RAY, *tracked("ray-batch", mlflow_server), follower=probe)
    assert (done.trained, sorted(done.up_to_date)) == ([], ONE_ROUND_MEMBERS)
    assert (probe.pending, probe.workers) == ([], {})
    assert ray_run.member_digests() == before
    assert len([run for run in runs_of("ray-batch", mlflow_server) if run.data.tags["kind"] == "member"]) == 4


LONG = ["train.schedule.min_steps=200", "train.resume_every=4"]  # a member of seconds: killed mid-way


def test_a_killed_worker_is_retried_and_resumes_to_the_same_bits(
    ray_cluster: None, planned_run: Run, tmp_path: Path, one_thread: None, mlflow_server: str
) -> None:
    straight = planned_run.clone(tmp_path / "straight")
    train(straight, LOCAL, *LONG, members=["f1-r0"])
    killed: list[Worker] = []

    def kill_first_attempt(member: str, worker: Worker, attempt: int, step: int) -> None:
        if attempt == 1 and step >= 10 and not killed:
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker)

    run = planned_run.clone(tmp_path / "killed")
    config = run.config(*LONG, *tracked("ray-kill", mlflow_server))
    probe = Probe(on_step=kill_first_attempt)
    with pipeline_tracking(config, run.workspace) as tracking:
        done = train_members(RunContext(config), run.workspace, ["f1-r0"], RAY, probe, tracking.member_tracking())

    (first, second) = probe.workers["f1-r0"]
    assert killed == [first] and second.pid != first.pid
    (output,) = done.trained
    assert output.result.resumed_from > 0 and output.result.resumed_from % 4 == 0
    assert run.member_digests() == straight.member_digests()
    (member_run,) = [run for run in runs_of("ray-kill", mlflow_server) if run.data.tags["kind"] == "member"]
    assert member_run.info.status == "FINISHED"  # the run the killed worker opened, continued by the retry
    assert member_run.data.metrics["steps"] == 200


def test_a_failing_member_fails_the_batch_by_name_and_the_rest_stays_trained(
    ray_cluster: None, planned_run: Run, tmp_path: Path
) -> None:
    run = planned_run.clone(tmp_path / "run")
    # A resume state written by another configuration: the member refuses it inside its worker.
    foreign = run.workspace.member_resume("f2-r0").with_name("resume-step1.safetensors")
    save_checkpoint(foreign, {}, kind="resume-state", step=1, ema_updates=1, best_score=None, fingerprint="other")
    probe = Probe()
    with pytest.raises(MemberFailed) as failed:
        train(run, RAY, follower=probe)
    error = failed.value
    assert list(error.failures) == ["f2-r0"] and "written by a different configuration" in error.failures["f2-r0"]
    assert "member f2-r0 failed" in str(error) and list(probe.failures) == ["f2-r0"]
    assert sorted([*error.finished, *error.not_trained, "f2-r0"]) == ONE_ROUND_MEMBERS
    assert sorted(run.member_digests()) == sorted(error.finished)

    foreign.unlink()
    foreign.with_name(foreign.name + ".json").unlink()
    again = train(run, RAY)
    assert sorted(o.job.member for o in again.trained) == sorted(["f2-r0", *error.not_trained])
    assert sorted(again.up_to_date) == sorted(error.finished)


def test_an_unreachable_tracking_server_costs_no_member(
    ray_cluster: None, planned_run: Run, tmp_path: Path, unreachable_uri: str
) -> None:
    run = planned_run.clone(tmp_path / "run")
    done = train(run, RAY, members=["f1-r1"], tracking=MemberRuns(unreachable_uri, "0", "no-such-parent"))
    assert [output.job.member for output in done.trained] == ["f1-r1"]
    assert list(run.member_digests()) == ["f1-r1"]


def test_a_comparison_on_ray_trains_each_shared_member_once_to_the_same_bits(
    ray_cluster: None, random_mini_clip: Path, tmp_path: Path, one_thread: None
) -> None:
    from tiny_config import tiny_params, write_params

    from ltsoups.compare.methods import load_methods
    from ltsoups.compare.results import ComparisonSpec, MethodResult
    from ltsoups.compare.run import ComparisonDisplay, ComparisonRequest, run_comparison
    from ltsoups.config import user_layers

    methods = load_methods()
    chosen = [methods[name] for name in ("lt-soups", "lt-soups-uniform", "full-ft")]
    outcomes = {}
    for runner in ("local", "ray"):
        (tmp_path / runner).mkdir()
        params = write_params(tmp_path / runner, tiny_params(random_mini_clip, workdir=str(tmp_path / runner / "out")))
        layers, source = user_layers(params, [f"runner.name={runner}"])
        probe = Probe()
        request = ComparisonRequest(tmp_path / runner / "compare", layers, source, chosen, [0], "lt-soups")
        spec = run_comparison(request, ComparisonDisplay(members=probe))
        results = {m.name: MethodResult.read(request.root / "runs" / m.name / "seed-0" / "result.json") for m in chosen}
        outcomes[runner] = (spec, {name: (r.weights_sha256, r.scores) for name, r in results.items()}, probe)

    (local, local_results, _), (on_ray, ray_results, probe) = outcomes["local"], outcomes["ray"]
    assert ray_results == local_results  # the runs finished (merge, CR, evaluation) on Ray's workers too
    assert on_ray.members_trained == local.members_trained == len(probe.finished_members)
    assert all(name.startswith(("lt-soups seed 0 ", "full-ft seed 0 ")) for name in probe.finished_members)
    trainers = {worker.pid for attempts in probe.workers.values() for worker in attempts}
    assert os.getpid() not in trainers and ComparisonSpec.read(tmp_path / "ray" / "compare").members_used > 0


def test_a_member_whose_worker_dies_without_retries_fails_by_name_and_its_run_ends_failed(
    ray_cluster: None, planned_run: Run, tmp_path: Path, one_thread: None, mlflow_server: str
) -> None:
    killed: list[Worker] = []

    def kill_the_worker(member: str, worker: Worker, attempt: int, step: int) -> None:
        if step >= 10 and not killed:
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker)

    run = planned_run.clone(tmp_path / "run")
    config = run.config(*LONG, *tracked("ray-no-retry", mlflow_server))
    no_retry = RayRunner(RayRunnerParams(max_retries=0))
    with pytest.raises(MemberFailed) as failed, pipeline_tracking(config, run.workspace) as tracking:
        members = ["f1-r0"]
        train_members(
            RunContext(config), run.workspace, members, no_retry, Probe(kill_the_worker), tracking.member_tracking()
        )
    assert killed and list(failed.value.failures) == ["f1-r0"] and run.member_digests() == {}
    (member_run,) = [run for run in runs_of("ray-no-retry", mlflow_server) if run.data.tags["kind"] == "member"]
    assert member_run.info.status == "FAILED"  # opened by the killed worker, closed by the driver
    assert member_run.data.tags["error"] == failed.value.failures["f1-r0"]


def test_an_address_other_than_the_cluster_this_process_is_connected_to_is_refused(
    ray_cluster: None, planned_run: Run, tmp_path: Path
) -> None:
    from ltsoups.registry import PluginError

    run = planned_run.clone(tmp_path / "run")
    elsewhere = RayRunner(RayRunnerParams(address="127.0.0.1:1"))
    with pytest.raises(
        PluginError, match=r"'127\.0\.0\.1:1', but this process is already connected to the Ray cluster"
    ):
        train(run, elsewhere, members=["f1-r0"])
    assert run.member_digests() == {}
    here = RayRunner(RayRunnerParams(address=ray.get_runtime_context().gcs_address))
    with here._connected():  # the cluster it is connected to, named: used as it is
        assert ray.is_initialized()
    assert ray.is_initialized()
