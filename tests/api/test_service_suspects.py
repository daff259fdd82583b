"""Root-service suspects over HTTP: listed with change suspects, labelled like them."""

from __future__ import annotations

import httpx

from tests.api.helpers import wait_idle
from tests.api.test_pipeline import _changes, _history


def test_service_suspects_are_listed_and_labelled(http: httpx.Client) -> None:
    _changes(http)
    http.post("/ingest/metrics", json={"points": _history()})
    wait_idle(http)
    inc = http.get("/incidents").json()[0]
    sus = http.get(f"/incidents/{inc['id']}/suspects").json()
    roots = [s for s in sus if s["kind"] == "service"]
    assert roots, "no root-service suspect"
    assert all(s["change_id"] is None and s["service"] and s["explanation"] and s["evidence"] for s in roots)
    assert [s["rank"] for s in sus] == list(range(1, len(sus) + 1))  # one list
    # the culprit change comes first, its service right after it among the services
    assert sus[0]["change_id"] == "dep-bad"
    assert roots[0]["service"] == "payments"
    r = http.post(f"/incidents/{inc['id']}/label", json={"suspect_id": roots[0]["id"], "verdict": "cause"})
    assert r.status_code == 200
    assert r.json()["service"] == "payments" and r.json()["change_id"] is None
    r = http.post(f"/incidents/{inc['id']}/label", json={"service": "payments", "verdict": "not_cause"})
    assert r.status_code == 200 and r.json()["service"] == "payments"
    assert http.post(f"/incidents/{inc['id']}/label", json={"service": "nope", "verdict": "cause"}).status_code == 404
    bad = http.post(f"/incidents/{inc['id']}/label", json={"suspect_id": roots[0]["id"], "change_id": "dep-bad",
                                                           "verdict": "cause"})
    assert bad.status_code == 422
    labels = http.get(f"/incidents/{inc['id']}/labels").json()
    assert [lb["service"] for lb in labels] == ["payments", "payments"]
    wait_idle(http)
    assert http.get("/model").status_code == 200
