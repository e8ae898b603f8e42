"""Stopping the MLflow server the tests and benchmarks start, when it has already exited (it failed to start)."""

from __future__ import annotations

import subprocess
import sys

from mlflow_server import _stop


def test_stopping_a_server_that_already_exited_is_no_error_of_its_own() -> None:
    exited = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    exited.wait()  # reaped, its process group gone: what a server that failed at start leaves
    _stop(exited)  # must not raise, or its ProcessLookupError would hide ServerDidNotStart and the server's log
    assert exited.returncode == 0
