"""A real `mlflow server` on 127.0.0.1 with a sqlite store, for tests and benchmarks whose processes share a store.

One sqlite file is safe for the processes of one machine, but a server is what MLflow's clients
expect when many processes log at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerDidNotStart(RuntimeError):
    """The server exited or did not answer its health check in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_mlflow_server(root: Path, start_seconds: float = 120) -> Iterator[str]:
    """Start `mlflow server` with its store and artifacts under ``root``; yield its URI; stop it after."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        uri = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_seconds
            while not _healthy(uri):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise ServerDidNotStart(f"mlflow server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.5)
            yield uri
        finally:
            _stop(server)


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group (gunicorn and its workers), then SIGKILL if it lingers; a group that
    has already exited (a server that failed to start) is no error of its own."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait()
