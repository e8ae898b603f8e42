"""Members trained outside DVC, in parallel (`ltsoups train-members --runner ray`), then `dvc repro`: the real
`dvc` trains no member again and runs only what follows; raising N trains only the new factor's members.

`train-members` records each member's train-member stage in dvc.lock (`dvc commit`), as if `dvc repro`
had run it. The tests share one repository and run in file order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from dvc_repo import BIN, DvcRepo
from tiny_config import ONE_ROUND_MEMBERS

pytestmark = pytest.mark.slow

NEW_MEMBERS = ["f4-r0", "f4-r1"]
AFTER_MEMBERS = ["merge", "retrain-head", "evaluate"]


def member_digests(root: Path) -> dict[str, str]:
    paths = sorted(root.glob("outputs/members/*/weights.safetensors"))
    return {path.parent.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def train_members(repo: DvcRepo, *args: str) -> str:
    return repo.run(str(BIN / "ltsoups"), "train-members", *args).stdout


@pytest.fixture(scope="module")
def repo(dvc_repo: DvcRepo, mlflow_server: str) -> DvcRepo:
    """The tiny pipeline, tracking to a real server: ray workers and DVC stages log to one store."""
    params = dvc_repo.params()
    params["tracking"] = {**params["tracking"], "uri": mlflow_server, "experiment": "dvc-ray"}
    dvc_repo.write_params(params)
    return dvc_repo


def test_members_trained_on_ray_are_recorded_in_dvc_lock(repo: DvcRepo) -> None:
    assert sorted(repo.repro("repro", "prepare", "theta0")) == ["data", "prepare", "theta0"]
    output = train_members(repo, "--runner", "ray")
    assert "trained 4 member(s); 0 already up to date" in output
    assert "recorded 4 train-member stage(s) in dvc.lock" in output
    status = repo.dvc("status").stdout
    assert "train-member" not in status and "merge" in status


def test_repro_then_trains_no_member_and_runs_only_what_follows(repo: DvcRepo, mlflow_server: str) -> None:
    trained = member_digests(repo.root)
    assert repo.repro("repro") == ["data", *AFTER_MEMBERS]
    assert member_digests(repo.root) == trained

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("dvc-ray")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [run for run in runs if run.data.tags["kind"] == "pipeline"]
    assert parent.info.status == "FINISHED"
    children = sorted(run.data.tags["kind"] for run in runs if run.data.tags.get("mlflow.parentRunId"))
    assert len(runs) == 1 + len(children)  # every run of the execution is a child of its one parent
    assert children == sorted(["member"] * 4 + ["soup"] * 2 + ["retrain-head", "evaluation"])


def test_a_second_train_members_trains_nothing(repo: DvcRepo) -> None:
    assert "trained 0 member(s); 4 already up to date" in train_members(repo)
    assert repo.repro("repro") == ["data"]  # the dataset's check, which changes nothing


def test_raising_n_trains_only_the_new_factor(repo: DvcRepo) -> None:
    trained = member_digests(repo.root)
    params = repo.params()
    params["plan"]["sampler"]["params"]["rounds"] = 2
    params["members"] += NEW_MEMBERS
    repo.write_params(params)
    assert repo.repro("repro", "prepare", "theta0") == ["data", "prepare"]
    output = train_members(repo)  # the local runner this time: the mechanism is the runner's choice
    assert "trained 2 member(s); 4 already up to date" in output
    assert "recorded 6 train-member stage(s) in dvc.lock" in output
    assert repo.repro("repro") == ["data", *AFTER_MEMBERS]
    after = member_digests(repo.root)
    assert sorted(after) == sorted(ONE_ROUND_MEMBERS + NEW_MEMBERS)
    assert {member: after[member] for member in ONE_ROUND_MEMBERS} == trained
