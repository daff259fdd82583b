"""The embedded server on the PostgreSQL store (``RCA_STORE__BACKEND=postgres``, real
server, in-process bus) gives the same incidents and top suspects as on DuckDB for
replayed simulated regressions, through the HTTP contract only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from server.embedded import EmbeddedServer
from server.sim.replay import get_suspects, list_incidents, replay
from server.sim.scenario import generate_scenario


def _summary(c: httpx.Client) -> list[dict[str, Any]]:
    out = []
    for inc in sorted(list_incidents(c), key=lambda i: i["id"]):
        top = get_suspects(c, inc["id"])[:3]
        out.append({
            "id": inc["id"], "status": inc["status"], "title": inc["title"], "services": inc["services"],
            "started_at": inc["started_at"], "resolved_at": inc.get("resolved_at"),
            "no_convincing_change": inc.get("no_convincing_change"),
            "top": [(s["rank"], s["change_id"], round(s["score"], 6), s["explanation"]) for s in top],
        })
    return out


def _run(data_dir: Path, seeds: list[tuple[int, str]]) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    runs = []
    with EmbeddedServer(data_dir=data_dir) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        backend = srv.settings.store.backend
        for seed, kind in seeds:
            replay(generate_scenario(seed, kind=kind, history_hours=1.5), c, timeout=240)
            runs.append(_summary(c))
        # a label and a rerun go through the state store too
        first = runs[-1][0]
        change_id = first["top"][0][1]
        r = c.post(f"/incidents/{first['id']}/label", json={"change_id": change_id, "verdict": "cause"})
        assert r.status_code == 200, r.text
        labels = c.get(f"/incidents/{first['id']}/labels").json()
        services = c.get("/services").json()
    return runs, {"backend": backend, "labels": [(lb["change_id"], lb["verdict"]) for lb in labels],
                  "services": services}


@pytest.mark.slow
def test_postgres_store_gives_the_same_incidents_and_suspects_as_duckdb(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = [(3, "deployment"), (8, "config_change")]
    monkeypatch.delenv("RCA_STORE__BACKEND", raising=False)
    duck, duck_extra = _run(tmp_path / "duckdb", seeds)
    monkeypatch.setenv("RCA_STORE__BACKEND", "postgres")
    monkeypatch.setenv("RCA_STORE__POSTGRES_DSN", pg_database)
    pg, pg_extra = _run(tmp_path / "postgres", seeds)
    assert duck_extra.pop("backend") == "duckdb" and pg_extra.pop("backend") == "postgres"
    assert all(run for run in duck), "every scenario should open at least one incident"
    assert all(any(i["top"] for i in run) for run in duck), "and rank suspects"
    assert pg == duck
    assert pg_extra == duck_extra
