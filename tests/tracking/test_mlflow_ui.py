"""What a person sees in MLflow's UI, in a browser profile that has never opened it: the link ltsoups prints opens
the experiment's runs table in the model-training view with the accuracy columns, and a member's loss chart.

Debian's Chromium driven by Playwright (nothing downloaded) against the session's real `mlflow server`.
Screenshots go to the test's temporary folder (``ui-*.png``): what docs/mlops.md describes.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import SERVED_MEMBERS
from system_chromium import CHROMIUM_ARGS, chromium

from ltsoups.tracking.ui import ACCURACY_COLUMNS, runs_table_url

WAIT_MS = 60_000  # the first page load of a cold server on 2 busy cores


def js_number(value: float) -> str:
    """``value`` as the browser writes it (10 for 10.0; shortest round-trip digits otherwise, as Python's repr)."""
    text = repr(value)
    return text.removesuffix(".0")


@pytest.fixture
def page(tmp_path: Path) -> Iterator:
    """A page of a fresh Chromium profile (empty localStorage: MLflow's UI remembers no earlier choice)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.slow
def test_printed_link_opens_the_runs_table_with_accuracy_columns_and_member_charts(
    served_run, run_tree, page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    tree = run_tree(served_run.experiment, served_run.uri)
    url = runs_table_url(served_run.uri, tree.experiment.experiment_id)
    assert url in served_run.output.replace("\n", "")  # `ltsoups run` prints it

    (parent,) = tree.parents
    # balanced, many, medium, few: the final model's test accuracy; the tiny data has no many-shot class,
    # and MLflow shows no column for a metric no run has.
    shown = [column for column in ACCURACY_COLUMNS[:4] if column in parent.data.metrics]
    assert shown == ["balanced", "medium", "few"]

    page.goto(url)
    table = page.locator(".ag-root")
    for column in shown:
        header = page.locator(f'[role=columnheader][col-id="metrics.`{column}`"]')
        expect(header).to_have_text(column, timeout=WAIT_MS)
    for name in [parent.info.run_name, "evaluate", "retrain-head", *(f"member {m}" for m in SERVED_MEMBERS)]:
        expect(table.get_by_role("link", name=name, exact=True)).to_be_visible()  # children listed, not folded
    expect(page.get_by_text("Model training", exact=True)).to_be_visible()
    expect(page.get_by_text("Token Usage")).to_have_count(0)  # not the GenAI overview
    balanced = table.locator('[role=gridcell][col-id="metrics.`balanced`"]')
    shown_value = re.compile(rf"^\s*{re.escape(js_number(parent.data.metrics['balanced']))}\s*$")
    expect(balanced.filter(has_text=shown_value)).to_have_count(1)  # the pipeline's; no other run has one
    page.screenshot(path=tmp_path / "ui-runs.png")

    table.get_by_role("link", name=f"member {SERVED_MEMBERS[0]}", exact=True).click()
    page.get_by_role("tab", name="Model metrics").click()
    page.get_by_role("searchbox", name="Search metric charts").fill("loss")  # charts render when scrolled to
    title = page.get_by_role("heading", name="loss", exact=True)
    expect(title).to_be_visible(timeout=WAIT_MS)
    card = page.get_by_test_id("experiment-view-compare-runs-card").filter(has=title)
    expect(card.locator(".du-bois-light-spin")).to_have_count(0, timeout=WAIT_MS)  # its history has loaded
    page.screenshot(path=tmp_path / "ui-member-charts.png")

    # The sidebar's switch, clicked once, is remembered: the experiment's bare address then opens its runs
    # (MLflow's own order: children folded under their pipeline run).
    page.get_by_text("Model training", exact=True).click()
    page.goto(f"{served_run.uri}/#/experiments/{tree.experiment.experiment_id}")
    expect(page).to_have_url(re.compile(r"/runs\?workflowType=machine_learning"), timeout=WAIT_MS)
    expect(page.get_by_role("link", name=parent.info.run_name, exact=True)).to_be_visible(timeout=WAIT_MS)
    page.screenshot(path=tmp_path / "ui-bare-address.png")
