"""Debian's Chromium for the browser tests, driven by Playwright (nothing downloaded)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Chromium's flags for a headless run in a container that must not reach the network by itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium() -> str:
    """The system Chromium; CI must have it (scripts/test.sh installs it), elsewhere the test is skipped."""
    path = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed (scripts/test.sh installs Debian's `chromium` as root)")
        pytest.skip("no Chromium: install Debian's `chromium` package (scripts/test.sh does it as root)")
    return path
