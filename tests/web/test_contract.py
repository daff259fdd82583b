"""The contract the web app is typed against: every endpoint declares its response model,
the committed OpenAPI document and the TypeScript types generated from it are current,
declaring models changed no response body, and CORS is off unless configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server import openapi_dump
from server.api import convert
from server.commands import web
from server.embedded import EmbeddedServer
from server.rca.service import model_info_of_store
from server.sim.replay import replay
from server.sim.scenario import generate_scenario


def test_committed_openapi_document_and_types_are_current() -> None:
    web.ensure_deps()  # the pinned openapi-typescript
    stale = openapi_dump.stale_files()
    assert stale == [], f"stale: {stale}; regenerate with 'python -m server.openapi_dump' and commit"


def test_every_endpoint_declares_its_response_model_and_errors() -> None:
    doc = openapi_dump.openapi_document()
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = {c: r for c, r in op["responses"].items() if c.startswith("2")}
            assert ok, f"{method} {path} declares no success response"
            for code, resp in ok.items():
                if code == "204":  # No Content has no body to declare (remote-write answers so)
                    continue
                content = resp.get("content") or {}
                schemas = [c.get("schema") for c in content.values()]
                if not schemas or any(not s for s in schemas):
                    missing.append(f"{method.upper()} {path} {code}")
            if "{" in path:  # endpoints of one item say what their 404 looks like
                r404 = op["responses"].get("404")
                assert r404 and r404["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorPublic"}, f"{method} {path} has no declared 404"
    assert missing == []


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("contract")) as srv:
        replay(generate_scenario(5, kind="mixed", history_hours=3.0, n_services=6), srv.url)
        srv.wait_idle()
        yield srv


def test_declared_models_leave_the_bodies_as_they_were(replayed: EmbeddedServer) -> None:
    state = replayed.app.state.rca
    with httpx.Client(base_url=replayed.url, timeout=30) as c:
        changes = c.get("/changes", params={"limit": 100_000}).json()
        expected = [convert.change_public(ch) for ch in state.store.list_changes(limit=100_000)]
        assert changes == expected
        assert {ch["kind"] for ch in changes} == {"deployment", "config_change", "flag_change"}
        # absent fields stay absent (no nulls added): flag changes have no "service", the others no "services"
        assert all(("service" in ch) != ("services" in ch) for ch in changes)
        one = changes[0]
        assert c.get(f"/changes/{one['id']}").json() == one
        assert c.get("/model").json() == model_info_of_store(state.store)
        inc = c.get("/incidents").json()[0]
        r = c.post(f"/incidents/{inc['id']}/rerun_rca")
        assert r.status_code == 202 and r.json() == {"accepted": 1, "incident_id": inc["id"]}
        r = c.post("/incidents/inc-nope/rerun_rca")
        assert r.status_code == 404 and "inc-nope" in r.json()["detail"]


def test_cors_is_off_by_default_and_allows_only_the_configured_origins(tmp_path: Path) -> None:
    preflight = {"Origin": "http://web.example:3000", "Access-Control-Request-Method": "GET"}
    with EmbeddedServer(data_dir=tmp_path / "a") as srv:
        r = httpx.get(srv.url + "/incidents", headers={"Origin": "http://web.example:3000"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = httpx.options(srv.url + "/incidents", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    with EmbeddedServer(data_dir=tmp_path / "b", api={"cors_origins": ["http://web.example:3000"]}) as srv:
        r = httpx.options(srv.url + "/incidents", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://web.example:3000"
        r = httpx.get(srv.url + "/incidents", headers={"Origin": "http://web.example:3000"})
        assert r.headers["access-control-allow-origin"] == "http://web.example:3000"
        r = httpx.options(srv.url + "/incidents", headers={**preflight, "Origin": "http://evil.example"})
        assert r.headers.get("access-control-allow-origin") != "http://evil.example"


def test_cors_origins_setting_reads_json_or_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.settings import Settings

    monkeypatch.setenv("RCA_API__CORS_ORIGINS", '["http://a:3000", "https://b.example"]')
    assert Settings().api.cors_origins == ["http://a:3000", "https://b.example"]
    monkeypatch.setenv("RCA_API__CORS_ORIGINS", "http://a:3000, https://b.example")
    assert Settings().api.cors_origins == ["http://a:3000", "https://b.example"]
    monkeypatch.delenv("RCA_API__CORS_ORIGINS")
    assert Settings().api.cors_origins == []


def test_change_bodies_keep_their_number_types(tmp_path: Path) -> None:
    from server.model import Change

    with EmbeddedServer(data_dir=tmp_path / "d") as srv:
        srv.app.state.rca.store.upsert_changes(changes=[Change(
            id="flag-int", kind="flag_change", services=["pricing"], ts=1796011220.0,
            fields={"flag": "f", "old_state": "off", "new_state": "on", "rollout_percent": 25})])
        body = httpx.get(srv.url + "/changes/flag-int").json()
    assert body["rollout_percent"] == 25 and isinstance(body["rollout_percent"], int)
    assert "service" not in body and body["services"] == ["pricing"]
