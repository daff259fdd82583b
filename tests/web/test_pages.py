"""The web app in real headless Chromium against a real server with replayed scenarios:
what a person opening the shared incident view sees and does."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from server.model import Incident, SuspectRef
from tests.web.conftest import WebApp, axe_violations, screenshot


def _api(app: WebApp, path: str, **params: Any) -> Any:
    r = httpx.get(app.api.url + path, params=params, timeout=30)
    r.raise_for_status()
    return r.json()


def _ranked_incident(app: WebApp) -> dict[str, Any]:
    incs = [i for i in _api(app, "/incidents") if i["top_suspect"] is not None]
    assert incs, "the replayed scenarios produced no incident with suspects"
    return max(incs, key=lambda i: i["anomaly_count"])


def test_list_shows_every_incident_with_its_top_suspect(seeded_web: WebApp, page: Any) -> None:
    incs = _api(seeded_web, "/incidents")
    assert incs
    page.goto(seeded_web.url + "/incidents")
    rows = page.get_by_test_id("incident-row")
    assert rows.count() == len(incs)
    for i, inc in enumerate(incs):
        row = rows.nth(i)
        assert row.get_attribute("data-incident") == inc["id"]
        assert inc["title"] in row.inner_text()
        if inc["top_suspect"] and inc["top_suspect"]["change_id"]:
            assert inc["top_suspect"]["change_id"] in row.inner_text()
    screenshot(page, "incidents", height=560)


def test_filters_narrow_the_list_and_live_in_the_url(seeded_web: WebApp, page: Any) -> None:
    incs = _api(seeded_web, "/incidents")
    page.goto(seeded_web.url + "/incidents")
    service = incs[0]["services"][0]
    page.get_by_label("Service").select_option(service)
    page.wait_for_url(re.compile(rf"service={re.escape(service)}"))
    want = _api(seeded_web, "/incidents", service=service)
    page.wait_for_function(f"document.querySelectorAll('[data-testid=incident-row]').length === {len(want)}")
    page.get_by_label("Status").select_option("RESOLVED")
    page.wait_for_url(re.compile(r"status=RESOLVED"))
    want = _api(seeded_web, "/incidents", service=service, status="RESOLVED")
    page.wait_for_function(f"document.querySelectorAll('[data-testid=incident-row]').length === {len(want)}")
    if not want:
        assert "No incidents match" in page.inner_text("main")
    # the filtered view is a link: opening it fresh shows the same selection
    page.goto(page.url)
    assert page.get_by_label("Status").input_value() == "RESOLVED"
    assert page.get_by_label("Service").input_value() == service


def test_new_incident_appears_without_a_reload(seeded_web: WebApp, page: Any) -> None:
    page.goto(seeded_web.url + "/incidents")
    before = page.get_by_test_id("incident-row").count()
    page.evaluate("window.__sameDocument = true")
    store = seeded_web.api.app.state.rca.store
    newest = max(i["started_at"] for i in _api(seeded_web, "/incidents"))
    from server.timeutil import parse_ts

    t = parse_ts(newest) + 3600
    store.save_incidents(incidents=[Incident(
        id="inc-web-live", status="OPEN", title="checkout: error_rate up 9.9x (live test)", started_at=t,
        detected_at=t + 20, services=["checkout"], severity=0.7, anomaly_count=1,
        top_suspect=SuspectRef(id="sus-x", kind="deployment", change_id="dep-live", score=0.8))])
    page.wait_for_selector("[data-incident=inc-web-live]", timeout=15_000)
    assert page.get_by_test_id("incident-row").count() == before + 1
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"


def test_detail_shows_ranked_suspects_with_evidence_and_charts(seeded_web: WebApp, page: Any) -> None:
    inc = _ranked_incident(seeded_web)
    suspects = _api(seeded_web, f"/incidents/{inc['id']}/suspects")
    anomalies = _api(seeded_web, f"/incidents/{inc['id']}/anomalies")
    page.goto(seeded_web.url + f"/incidents/{inc['id']}")
    assert inc["title"] in page.inner_text("h1")
    cards = page.get_by_test_id("suspect")
    assert cards.count() == len(suspects)
    first = cards.first
    top = suspects[0]
    text = first.inner_text()
    assert f"#{top['rank']}" in text and top["explanation"] in text
    if top["change_id"]:
        assert top["change_id"] in text
    bars = first.get_by_test_id("evidence").locator(".bar-row")
    assert bars.count() == len(top["evidence"])
    strongest = max(top["evidence"].items(), key=lambda kv: kv[1])
    assert f"{strongest[1]:.2f}" in bars.first.inner_text()
    assert strongest[0].replace("_", " ") in bars.first.inner_text()
    # anomaly charts: one per anomalous series (up to 8), each with its onset marker and points
    charts = page.get_by_test_id("anomaly")
    assert charts.count() == min(8, len({(a["service"], a["metric"]) for a in anomalies}))
    assert charts.first.locator(".marker.onset").count() == 1
    # each chart says why its anomaly is anomalous (the sentence the server stored with it)
    reasons = {a["reason"] for a in anomalies}
    shown = charts.first.get_by_test_id("anomaly-reason").inner_text()
    assert shown.startswith("Why anomalous:") and shown.removeprefix("Why anomalous:").strip() in reasons
    assert charts.first.locator("path.line").count() == 1
    assert page.locator(".marker.change").count() >= 1
    screenshot(page, "incident", height=1500)


def test_labelling_a_suspect_stores_the_label_on_the_server(seeded_web: WebApp, page: Any) -> None:
    inc = _ranked_incident(seeded_web)
    top = next(s for s in _api(seeded_web, f"/incidents/{inc['id']}/suspects") if s["change_id"])
    page.goto(seeded_web.url + f"/incidents/{inc['id']}")
    card = page.locator(f"[data-testid=suspect][data-change='{top['change_id']}']")
    card.get_by_role("button", name="Cause", exact=True).click()
    card.get_by_test_id("label-state").get_by_text("cause").wait_for()
    assert "Labelled cause by web" in card.get_by_test_id("label-state").inner_text()
    labels = _api(seeded_web, f"/incidents/{inc['id']}/labels")
    assert [(lb["change_id"], lb["verdict"], lb["author"]) for lb in labels][-1] == (top["change_id"], "cause", "web")
    # and it is still there after a reload
    page.reload()
    card = page.locator(f"[data-testid=suspect][data-change='{top['change_id']}']")
    assert "Labelled cause" in card.get_by_test_id("label-state").inner_text()
    assert card.get_by_role("button", name="Cause", exact=True).get_attribute("aria-pressed") == "true"


def test_rerun_rca_and_permalink(seeded_web: WebApp, page: Any) -> None:
    inc = _ranked_incident(seeded_web)
    page.goto(seeded_web.url + f"/incidents/{inc['id']}")
    page.get_by_role("button", name="Rerun RCA").click()
    page.get_by_text("RCA rerun requested").wait_for()
    link = page.get_by_role("link", name="Permalink")
    assert link.get_attribute("href") == f"/incidents/{inc['id']}"


def test_the_tui_o_key_opens_a_page_that_exists(seeded_web: WebApp, page: Any) -> None:
    from workbench.tui.app import RcaTui

    inc = _ranked_incident(seeded_web)
    url = RcaTui(seeded_web.api.url, web_url=seeded_web.url).incident_web_url(inc["id"])
    resp = page.goto(url)
    assert resp is not None and resp.status == 200
    assert inc["title"] in page.inner_text("h1")


def test_unknown_incident_shows_the_not_found_page(seeded_web: WebApp, page: Any) -> None:
    # (the status is 200: the route streams its loading state before the server answers 404)
    page.goto(seeded_web.url + "/incidents/inc-does-not-exist")
    page.get_by_role("heading", name="Incident not found").wait_for()
    assert page.get_by_role("link", name="incident list").get_attribute("href") == "/incidents"


def test_services_and_change_log(seeded_web: WebApp, page: Any) -> None:
    services = _api(seeded_web, "/services")
    page.goto(seeded_web.url + "/services")
    assert page.get_by_test_id("service-row").count() == len(services)
    name = sorted(s["name"] for s in services)[0]
    page.get_by_role("link", name=name, exact=True).first.click()
    page.wait_for_url(re.compile(rf"/services/{name}$"))
    metrics = {s["metric"] for s in _api(seeded_web, "/services/metrics", service=name)}
    # a client-side navigation changes the URL before the server component has streamed in
    page.locator("figure.chart").first.wait_for()
    assert page.locator("figure.chart").count() == len(metrics)
    assert page.locator("path.line").count() == len(metrics)

    changes = _api(seeded_web, "/changes", limit=300)
    page.goto(seeded_web.url + "/changes")
    assert page.get_by_test_id("change-row").count() == len(changes)
    page.goto(seeded_web.url + "/changes?kind=deployment")
    deps = _api(seeded_web, "/changes", kind="deployment", limit=300)
    assert page.get_by_test_id("change-row").count() == len(deps)
    assert page.locator(f"#change-{deps[0]['id']}").count() == 1


def test_proxies_answer_for_the_server_and_refuse_unknown_simulator_controls(seeded_web: WebApp) -> None:
    r = httpx.get(seeded_web.url + "/api/rca/health", timeout=10)
    assert r.status_code == 200 and r.json()["pending"] == 0
    r = httpx.post(seeded_web.url + "/api/sim/shutdown", timeout=10)
    assert r.status_code == 404 and "unknown simulator control" in r.json()["detail"]
    # no simulator runs here: the demo's proxy says so instead of failing obscurely
    r = httpx.get(seeded_web.url + "/api/sim/health", timeout=10)
    assert r.status_code == 502 and "cannot reach the simulator" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/incidents", "DETAIL", "/services", "/changes", "/demo"])
def test_no_serious_accessibility_violations(seeded_web: WebApp, page: Any, path: str) -> None:
    if path == "DETAIL":
        path = f"/incidents/{_ranked_incident(seeded_web)['id']}"
    page.goto(seeded_web.url + path)
    page.wait_for_load_state("networkidle")
    assert axe_violations(page) == []
