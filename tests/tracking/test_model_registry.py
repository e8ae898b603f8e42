"""The final classifier as an MLflow Model: on the parent run, registered, loaded elsewhere, served over HTTP.

All on `served_run` (a tiny `ltsoups run` against the session's real `mlflow server`, registered as version 1
of SERVED_MODEL): the registered folder holds no pickle, a fresh process in another folder loads it, and a
real `mlflow models serve` answers as `ltsoups predict` does on the same 66 test images.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from mlflow_server import free_port
from PIL import Image
from safetensors import safe_open
from served import SERVED_MEMBERS, SERVED_MODEL
from tiny_config import TINY_DATA
from typer.testing import CliRunner

from ltsoups.cli.app import app

if TYPE_CHECKING:
    from conftest import ServedRun

pytestmark = pytest.mark.slow

MODEL_URI = f"models:/{SERVED_MODEL}/1"
TEST_PER_CLASS = 11  # x 6 classes: 66 images, at least the 64 the served answers are checked on
SERVE_START_SECONDS = 180
# Every file kind a model folder may hold, each read back by a parser that runs no code; anything else fails.
READERS = {
    ".yaml": lambda path: yaml.safe_load(path.read_text()),
    ".json": lambda path: json.loads(path.read_text()),
    ".txt": lambda path: path.read_text(),
    ".py": lambda path: compile(path.read_text(), str(path), "exec"),
    ".safetensors": lambda path: safe_open(str(path), "pt").keys(),
}
PICKLE_PROTOCOLS = {b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"}
ZIP = b"PK\x03\x04"  # torch.save writes a zip around a pickle


@pytest.fixture(scope="module")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Test images of the tiny embedded world (its six classes, 11 each) as PNG files."""
    from ltsoups.registry import PluginKind, installed_registry

    folder = tmp_path_factory.mktemp("test-images")
    params = {**TINY_DATA, "test_per_class": TEST_PER_CLASS}
    split = installed_registry().create(PluginKind.DATASET, "embedded", params).load().test
    paths = [folder / f"{index:03d}.png" for index in range(len(split))]
    for index, path in enumerate(paths):
        split.source.image(index).save(path)
    return paths


@pytest.fixture(scope="module")
def predicted(served_run: ServedRun, test_images: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`ltsoups predict -m models:/...` on the test images: file name -> its top-3 (class, probability) pairs."""
    out = tmp_path_factory.mktemp("predict") / "predictions.jsonl"
    args = ["predict", str(test_images[0].parent), "-m", MODEL_URI, "-k", "3", "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out.parent)  # no params.yaml here: the defaults, with the server as the store
        result = CliRunner().invoke(app, [*args, "--set", f"tracking.uri={served_run.uri}"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {Path(row["path"]).name: [(top["class"], top["probability"]) for top in row["top"]] for row in rows}


def model_files(folder: Path) -> dict[str, Path]:
    return {path.relative_to(folder).as_posix(): path for path in folder.rglob("*") if path.is_file()}


def read_without_code(path: Path) -> object:
    """The file parsed by what its kind calls for (the MLmodel file is YAML); KeyError for a kind not allowed."""
    head = path.read_bytes()[:4]
    assert head[:2] not in PICKLE_PROTOCOLS and head != ZIP, f"{path} is a pickle"
    return READERS[".yaml" if path.name == "MLmodel" else path.suffix](path)


def test_registered_version_is_the_final_classifier_without_a_pickle(served_run: ServedRun, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.entities import LoggedModelStatus

    READY = LoggedModelStatus.READY
    client = MlflowClient(served_run.uri)
    experiment = client.get_experiment_by_name(served_run.experiment)
    (parent,) = client.search_runs([experiment.experiment_id], "tags.kind = 'pipeline'")
    members = client.search_runs([experiment.experiment_id], "tags.kind = 'member'")
    member_runs = {run.data.params["member"]: run.info.run_id for run in members}
    final = served_run.folder / "outputs" / "final" / "final.safetensors"
    sidecar = json.loads(final.with_name("final.safetensors.json").read_text())

    registered = client.get_model_version(SERVED_MODEL, "1")
    assert registered.tags == {
        "config_hash": parent.data.tags["config_hash"],
        "code_version": parent.data.tags["code_version"],
        "weights_sha256": sidecar["weights_sha256"],
        "members": ",".join(SERVED_MEMBERS),
        "member_runs": ",".join(member_runs[member] for member in SERVED_MEMBERS),
    }
    assert registered.run_id == parent.info.run_id
    assert parent.data.tags["registered_model"] == MODEL_URI
    (output,) = parent.outputs.model_outputs
    assert registered.source == f"models:/{output.model_id}"
    logged = client.get_logged_model(output.model_id)
    assert (logged.experiment_id, logged.status, logged.name) == (experiment.experiment_id, READY, "classifier")
    assert logged.params["merge.merger.params.lambda"] == "0.7"
    assert logged.metrics  # the final scores, linked from the parent run

    # models:/ downloads resolve the version with the global registry URI: the model's own location instead.
    location = client.get_model_version_download_uri(SERVED_MODEL, "1")
    folder = Path(download_artifacts(location, dst_path=str(tmp_path), tracking_uri=served_run.uri))
    files = model_files(folder)
    assert {"MLmodel", "model_code.py", "artifacts/final.safetensors", "artifacts/final.safetensors.json"} <= set(files)
    parsed = {name: read_without_code(path) for name, path in files.items()}
    assert files["artifacts/final.safetensors"].read_bytes() == final.read_bytes()
    flavor = parsed["MLmodel"]["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in flavor
    assert {"inputs", "outputs", "params"} <= set(parsed["MLmodel"]["signature"])
    assert parsed["serving_input_example.json"]["dataframe_split"]["columns"] == ["image"]
    assert f"ltsoups=={version('ltsoups')}" in parsed["requirements.txt"].splitlines()


def test_a_fresh_process_in_another_folder_loads_it(
    served_run: ServedRun, test_images: list[Path], predicted: dict, tmp_path: Path
) -> None:
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "files = [open(path, 'rb').read() for path in sys.argv[2:]]\n"
        "print(json.dumps(model.predict(pd.DataFrame({'image': files}))['class'].tolist()))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": served_run.uri}
    done = subprocess.run(
        [sys.executable, "-c", script, MODEL_URI, *map(str, test_images)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    classes = json.loads(done.stdout.splitlines()[-1])
    assert classes == [predicted[path.name][0][0] for path in test_images]


@contextmanager
def served(model_uri: str, tracking_uri: str, log: Path) -> Iterator[str]:
    """`mlflow models serve` in the venv, until it answers /ping (bounded); its URL. Its process group is killed."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    # The server starts uvicorn by name: the venv's bin first on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while not _answers(f"{url}/ping"):
            assert server.poll() is None, f"mlflow models serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer in {SERVE_START_SECONDS} s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_served_model_answers_as_predict_does(
    served_run: ServedRun, test_images: list[Path], predicted: dict, tmp_path: Path
) -> None:
    from ltsoups import load_classifier

    encoded = [base64.b64encode(path.read_bytes()).decode() for path in test_images]
    # What `pixels` takes: an image preprocessed as the model evaluates it (one centre view here).
    preprocess = load_classifier(served_run.folder / "outputs" / "final" / "final.safetensors").preprocess
    pixels = [preprocess(Image.open(path)).tolist() for path in test_images[:4]]
    with served(MODEL_URI, served_run.uri, tmp_path / "serve.log") as url:
        status, answer = post(url, {"dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded]}})
        assert status == 200, answer
        status_k, answer_k = post(url, {"dataframe_records": [{"image": encoded[0]}], "params": {"top_k": 3}})
        status_pixels, answer_pixels = post(
            url, {"dataframe_split": {"columns": ["pixels"], "data": [[p] for p in pixels]}}
        )
        bad_status, bad = post(url, {"dataframe_records": [{"image": encoded[0]}, {"image": "bm90IGFuIGltYWdl"}]})

    rows = answer["predictions"]
    assert len(rows) == len(test_images) >= 64
    assert [row["class"] for row in rows] == [predicted[path.name][0][0] for path in test_images]
    for row, path in zip(rows, test_images, strict=True):
        assert row["probability"] == pytest.approx(predicted[path.name][0][1], abs=1e-5)
        assert len(row["top"]) == 5 and row["top"][0] == {"class": row["class"], "probability": row["probability"]}
    assert status_k == 200
    top = [(entry["class"], entry["probability"]) for entry in answer_k["predictions"][0]["top"]]
    assert [name for name, _ in top] == [name for name, _ in predicted[test_images[0].name]]
    assert status_pixels == 200
    assert [row["class"] for row in answer_pixels["predictions"]] == [row["class"] for row in rows[:4]]
    assert bad_status == 400 and "row 1: 'image' is not an image file" in bad["message"]
