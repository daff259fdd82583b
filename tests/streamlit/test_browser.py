"""A real headless Chromium (Debian's /usr/bin/chromium, installed by
.ci/steps/30-chromium.sh) loads the running ``rca ui`` app, driven by Python playwright.

Set ``RCA_UI_SCREENSHOT=docs/img/ui-evidence.png`` to refresh the README's screenshot of
the evidence page from this test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from server.embedded import EmbeddedServer, free_port
from tests.streamlit.conftest import incident_with_change_suspect
from workbench.client import RcaClient
from workbench.ui_cli import UiProcess

CHROMIUM = os.environ.get("RCA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage"]
LOAD_TIMEOUT_MS = 300_000  # the plotly bundle takes a while on a busy 2-core machine


@pytest.fixture(scope="module")
def ui(replayed_server: EmbeddedServer) -> Iterator[UiProcess]:
    with UiProcess(replayed_server.url, port=free_port()) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run .ci/steps/30-chromium.sh (apt package chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _wait_idle(page: Page) -> None:
    """Until the script run is over (Streamlit shows a running indicator while it runs)."""
    deadline = time.monotonic() + LOAD_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.5)


def test_chromium_loads_the_evidence_page_from_a_deep_link(ui: UiProcess, browser: Browser,
                                                           replayed_server: EmbeddedServer, tmp_path: Path) -> None:
    inc = incident_with_change_suspect(replayed_server.url)
    with RcaClient(replayed_server.url) as c:
        top = c.suspects(inc.id)[0]
    page = browser.new_page(viewport={"width": 1500, "height": 2300})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{ui.url}/incident?id={inc.id}", timeout=LOAD_TIMEOUT_MS)
    page.get_by_text(f"{inc.id} · {inc.title}").wait_for(timeout=LOAD_TIMEOUT_MS)
    page.get_by_text("Ranked suspects").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.locator(".js-plotly-plot").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator(".js-plotly-plot").count() >= 2  # anomaly charts, suspects by kind, evidence
    # the explanation as the page writes it (markdown); the suspects table also holds the
    # text in hidden accessibility cells of its canvas grid, which come first in the page
    expect(page.get_by_test_id("stMarkdownContainer").get_by_text(top.explanation).first).to_be_visible(
        timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Cause", exact=True).first).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in ("Incidents", "Incident evidence", "Explorer", "Changes", "Model"):
        assert nav.get_by_text(title, exact=True).count() == 1, title
    time.sleep(2)  # let the charts finish their transitions before the picture
    shot = Path(os.environ.get("RCA_UI_SCREENSHOT") or tmp_path / "ui-evidence.png")
    page.screenshot(path=str(shot), timeout=LOAD_TIMEOUT_MS)
    assert shot.stat().st_size > 20_000
    assert not errors, errors
    page.close()


def test_chromium_loads_the_incident_list(ui: UiProcess, browser: Browser, replayed_server: EmbeddedServer) -> None:
    with RcaClient(replayed_server.url) as c:
        n = len(c.incidents(limit=1000))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(ui.url, timeout=LOAD_TIMEOUT_MS)
    page.get_by_role("heading", name="Incidents").wait_for(timeout=LOAD_TIMEOUT_MS)
    # the metric labelled "Incidents" (not the first metric on the page: Streamlit may still
    # show another page's elements while the script reruns), retried until it settles
    label = page.get_by_test_id("stMetricLabel").get_by_text("Incidents", exact=True)
    metric = page.get_by_test_id("stMetric").filter(has=label)
    expect(metric.get_by_test_id("stMetricValue")).to_have_text(str(n), timeout=LOAD_TIMEOUT_MS)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.close()
