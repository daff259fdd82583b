"""The live demo page against a real server and a live simulator (1 s reports): watch the
fleet, press the button that rolls out a faulty deployment, see the incident and its
suspects appear."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.commands import web
from server.commands.demo import _SimServer
from server.embedded import EmbeddedServer, free_port
from tests.web.conftest import WebApp, _start_web, axe_violations, screenshot

INTERVAL = 1.0


@pytest.fixture(scope="module")
def live(built_app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebApp, _SimServer]]:
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("web-live")) as srv:
        sim = _SimServer(srv.url, free_port(), seed=11, interval=INTERVAL, backfill_hours=0.25)
        sim.start()
        try:
            url, proc = _start_web(srv.url, sim.url)
            try:
                yield WebApp(url=url, api=srv), sim
            finally:
                web.stop(proc)
        finally:
            sim.stop()


def test_demo_injects_a_fault_and_the_incident_and_suspects_appear(live: tuple[WebApp, _SimServer],
                                                                  page: Any) -> None:
    app, sim = live
    page.goto(app.url + "/demo")
    fleet = page.get_by_test_id("fleet-service")
    fleet.first.wait_for()
    assert fleet.count() == len(sim.sim.fleet.names)
    # wait until the history is in and processed, so the fault is the only regression
    while sim.sim.sent["metrics"] == 0:
        page.wait_for_timeout(200)
    app.api.wait_idle(timeout=120)
    page.wait_for_function("document.querySelector('.spark path') !== null", timeout=20_000)
    service = page.get_by_label("Service").input_value()
    assert service in sim.sim.fleet.names
    page.get_by_role("button", name="Roll out a faulty deployment").click()
    page.get_by_test_id("demo-message").get_by_text("waiting for the server").wait_for()
    dep = next(a for a in sim.sim.faults if a.origin == "deploy")
    assert dep.fault.service == service and dep.change_id in page.get_by_test_id("demo-message").inner_text()
    # the page shows the fault on the service card
    page.locator(".svc.faulty").get_by_text(service, exact=True).wait_for()
    page.get_by_test_id("demo-incident").wait_for(timeout=120_000)
    page.get_by_test_id("demo-suspects").wait_for(timeout=60_000)
    shown = page.get_by_test_id("demo-suspects").get_by_test_id("suspect")
    assert shown.count() >= 1
    assert shown.first.get_by_test_id("evidence").locator(".bar-row").count() >= 1
    # the incident on the page is the server's
    inc_id = page.get_by_test_id("demo-incident").locator(".mono").inner_text()
    inc = httpx.get(f"{app.api.url}/incidents/{inc_id}", timeout=10).json()
    assert inc["status"] == "OPEN" and service in inc["services"]
    suspects = httpx.get(f"{app.api.url}/incidents/{inc_id}/suspects", timeout=10).json()
    assert shown.first.get_attribute("data-change") == (suspects[0]["change_id"] or "")
    screenshot(page, "demo", height=1300)
    assert axe_violations(page) == []
