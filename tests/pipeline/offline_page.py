"""Open a local HTML page in the system Chromium with the network cut off, as on an air-gapped cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from system_chromium import chromium

WAIT_MS = 60_000  # a cold browser on 2 busy cores


@dataclass(frozen=True)
class RenderedPage:
    charts: int
    """Vega views drawn (a canvas or an SVG of marks each)."""
    refused: list[str]
    """Requests that left the machine's files, all refused."""
    inked: float
    """Share of the screenshot's pixels that are not white."""


def render_offline(page: Path, screenshot: Path, charts: int) -> RenderedPage:
    """Load ``page`` with every non-file request refused, wait for ``charts`` Vega views, save a screenshot."""
    from playwright.sync_api import Route, sync_playwright

    refused: list[str] = []

    def local_only(route: Route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    views = "canvas.marks, svg.marks"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.route("**/*", local_only)
            tab.goto(page.resolve().as_uri())
            tab.wait_for_function(f"document.querySelectorAll({views!r}).length >= {charts}", timeout=WAIT_MS)
            drawn = tab.locator(views).count()
            tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    pixels = np.asarray(Image.open(screenshot).convert("L"))
    return RenderedPage(drawn, refused, float(np.mean(pixels < 250)))
