"""Where runs go: tracking.uri, else $MLFLOW_TRACKING_URI, else sqlite mlflow.db in the working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ltsoups.config import TrackingConfig
from ltsoups.tracking.params import flat_params
from ltsoups.tracking.settings import shorten_http_retries, tracking_uri


def test_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(TrackingConfig()) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(TrackingConfig()) == "http://127.0.0.1:5000"
    assert tracking_uri(TrackingConfig(uri="sqlite:///other.db")) == "sqlite:///other.db"


def test_short_http_retries_leave_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    shorten_http_retries()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    assert int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) <= 30


def test_config_sections_become_flat_params() -> None:
    nested = {"merge": {"merger": {"name": "recursive", "params": {"lambda": 0.7}}}, "head": {"templates": ["a {}."]}}
    assert flat_params({**nested, "evaluate": {}, "uri": None, "long": "x" * 7000}) == {
        "merge.merger.name": "recursive",
        "merge.merger.params.lambda": "0.7",
        "head.templates": '["a {}."]',
        "evaluate": "{}",
        "uri": "null",
        "long": "x" * 5997 + "...",
    }
