"""Fixtures for the web app's end-to-end tests: real headless Chromium (Debian's
/usr/bin/chromium driven by Playwright), the built Next.js app started by the test, and a
real embedded server seeded by replaying simulated scenarios through the HTTP contract.

The app is installed (npm ci) and built (next build) by the first test that needs it
when frontend/.next is missing or stale, so ``pytest -q`` alone works once Node.js and
Chromium are on the machine (.ci/steps/40-web.sh installs Chromium).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.commands import web
from server.embedded import EmbeddedServer, free_port
from server.sim.replay import replay
from server.sim.scenario import generate_scenario

CHROMIUM = os.environ.get("RCA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
AXE = web.FRONTEND / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class WebApp:
    url: str
    api: EmbeddedServer


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def built_app() -> Path:
    try:
        web.ensure_built(say=_say)
    except web.WebError as exc:
        pytest.fail(f"cannot build the web app: {exc}")
    return web.FRONTEND


def _start_web(api_url: str, sim_url: str | None = None) -> tuple[str, Any]:
    port = free_port()
    proc = web.start(port=port, api_url=api_url, sim_url=sim_url, quiet=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"next start exited with {proc.returncode}")
        try:
            if httpx.get(url + "/api/rca/health", timeout=5).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    web.stop(proc)
    pytest.fail("the web app did not answer within 60 s")


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """Two seeded regressions replayed over HTTP through the whole pipeline."""
    scs = sorted((generate_scenario(seed, kind="deployment", history_hours=1.0, n_services=6) for seed in (3, 4)),
                 key=lambda s: s.start)
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("web-seeded")) as srv:
        for sc in scs:
            replay(sc, srv.url)
        srv.wait_idle()
        yield srv


@pytest.fixture(scope="module")
def seeded_web(built_app: Path, seeded_server: EmbeddedServer) -> Iterator[WebApp]:
    url, proc = _start_web(seeded_server.url)
    try:
        yield WebApp(url=url, api=seeded_server)
    finally:
        web.stop(proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (.ci/steps/40-web.sh does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    p.set_default_timeout(20_000)
    yield p
    ctx.close()


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """Run axe-core (the npm package, injected into the page) and return the violations
    of the given impacts, each with its rule id, help text and offending nodes."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in impacts]


def screenshot(page: Any, name: str, height: int = 900) -> None:
    """With RCA_WEB_SCREENSHOTS=DIR, save the top ``height`` pixels of the page as DIR/web-NAME.png."""
    out = os.environ.get("RCA_WEB_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": height})
        page.wait_for_timeout(300)
        page.screenshot(path=str(Path(out) / f"web-{name}.png"))
