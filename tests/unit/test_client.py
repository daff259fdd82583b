"""workbench.client against a real embedded server: every endpoint, typed results, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from server.embedded import EmbeddedServer, free_port
from tests.support import silent_server
from workbench.client import (
    AsyncRcaClient,
    Change,
    Incident,
    NotFound,
    RcaClient,
    ServerTimeout,
    ServerUnavailable,
    ValidationFailed,
    calls,
)
from workbench.client.models import parse_dt

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
ONSET = T0 + timedelta(minutes=40)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One server with a hand-made regression: payments latency jumps 3x after dep-481."""
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("client") / "data") as s:
        with RcaClient(s.url) as c:
            assert c.ingest_topology([("frontend", "checkout"), {"source": "checkout", "target": "payments"}]) == 2
            assert c.ingest_deployments([{
                "id": "dep-481", "service": "payments", "ts": ONSET - timedelta(minutes=2), "version": "v2.14.0",
                "previous_version": "v2.13.2", "author": "alice",
                "diff": {"files": [{"path": "src/payments/tokenizer.py", "added": 120, "removed": 35}]}}]) == 1
            assert c.ingest_config_changes([{"id": "cfg-77", "service": "checkout", "ts": T0 + timedelta(minutes=5),
                                             "key": "http.timeout_ms", "old_value": "2000",
                                             "new_value": "1500"}]) == 1
            assert c.ingest_flag_changes([{"id": "flag-9", "flag": "new_pricing", "services": ["frontend"],
                                           "ts": T0 + timedelta(minutes=10), "old_state": "off",
                                           "new_state": "on", "rollout_percent": 25}]) == 1
            points = []
            for i in range(0, 60 * 60, 10):
                ts = T0 + timedelta(seconds=i)
                wiggle = ((i * 7919) % 13) / 13.0
                lat = 58.0 + 4 * wiggle + (120.0 if ts >= ONSET else 0.0)
                points.append({"service": "payments", "metric": "p95_latency_ms", "ts": ts, "value": lat})
                points.append({"service": "checkout", "metric": "p95_latency_ms", "ts": ts.timestamp(),
                               "value": 80.0 + 5 * wiggle + (100.0 if ts >= ONSET else 0.0)})
            assert c.ingest_metrics(points) == len(points)
            logs = [{"service": "payments", "ts": ONSET + timedelta(seconds=5 * k), "level": "error",
                     "message": f"tokenizer.py timeout after {200 + k} ms"} for k in range(20)]
            assert c.ingest_logs(logs) == 20
            c.wait_idle(timeout=60)
        yield s


def test_ingest_and_query_every_endpoint(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        h = c.health()
        assert h.ok and h.pending == 0 and h.components
        services = {s.name: s for s in c.services()}
        assert {"payments", "checkout"} <= set(services)
        assert "p95_latency_ms" in services["payments"].metrics
        infos = c.service_metrics(service="payments")
        assert [(i.service, i.metric, i.points) for i in infos] == [("payments", "p95_latency_ms", 360)]
        assert infos[0].first_ts == T0
        s = c.series("payments", "p95_latency_ms", since=ONSET - timedelta(minutes=5),
                     until=ONSET - timedelta(seconds=1), step=60)
        assert 5 <= len(s.points) <= 6 and all(55 < v < 65 for v in s.values)
        assert all(isinstance(p.ts, datetime) and p.ts.tzinfo is not None for p in s.points)
        changes = {ch.id: ch for ch in c.changes()}
        assert set(changes) == {"dep-481", "cfg-77", "flag-9"}
        dep = changes["dep-481"]
        assert (dep.kind, dep.service, dep.fields["version"]) == ("deployment", "payments", "v2.14.0")
        assert dep.diff_files[0]["path"] == "src/payments/tokenizer.py"
        assert changes["flag-9"].services == ["frontend"] and changes["flag-9"].fields["rollout_percent"] == 25
        assert [ch.id for ch in c.changes(kind="config_change")] == ["cfg-77"]
        assert c.change("cfg-77").fields["new_value"] == "1500"
        info = c.model()
        assert info is None or isinstance(info, dict)


def test_incident_suspects_label_and_rerun(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        incidents = c.incidents()
        assert incidents, "the level shift should open an incident"
        inc = next(i for i in incidents if "payments" in i.services)
        assert isinstance(inc, Incident) and isinstance(inc.started_at, datetime)
        assert abs((inc.started_at - ONSET).total_seconds()) < 300
        assert c.incident(inc.id) == inc
        assert [i.id for i in c.incidents(service="payments")] == [i.id for i in incidents
                                                                   if "payments" in i.services]
        assert all(i.status == "OPEN" for i in c.incidents(status="OPEN"))
        assert len(c.incidents(limit=1)) == 1
        anomalies = c.anomalies(inc.id)
        assert any(a.service == "payments" and a.direction == "up" for a in anomalies)
        suspects = c.suspects(inc.id)
        assert [s.rank for s in suspects] == list(range(1, len(suspects) + 1))
        assert suspects[0].change_id == "dep-481"
        assert all(0 <= v <= 1 for v in suspects[0].evidence.values()) and suspects[0].explanation
        label = c.label(inc.id, suspect_id=suspects[0].id, verdict="cause", author="me", note="rolled back")
        assert (label.change_id, label.verdict, label.author, label.note) == ("dep-481", "cause", "me",
                                                                            "rolled back")
        other = c.label(inc.id, change_id="cfg-77", verdict="not_cause")
        assert other.change_id == "cfg-77"
        assert {(lb.change_id, lb.verdict) for lb in c.labels(inc.id)} >= {("dep-481", "cause"),
                                                                           ("cfg-77", "not_cause")}
        assert c.rerun_rca(inc.id)["accepted"] == 1
        c.wait_idle(timeout=30)
        assert c.suspects(inc.id)[0].change_id == "dep-481"


def test_errors_are_typed(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        with pytest.raises(NotFound) as nf:
            c.incident("inc-does-not-exist")
        assert nf.value.status_code == 404
        with pytest.raises(ValidationFailed) as bad:
            c.ingest_metrics([{"service": "payments", "metric": "m", "ts": T0, "value": 1.0},
                              {"service": "payments", "metric": "m", "ts": "yesterday", "value": 1.0}])
        assert bad.value.status_code == 422
        assert "1" in str(bad.value.detail)  # names the bad item's index
        with pytest.raises(ValueError):
            c.label("inc-1", verdict="maybe", change_id="dep-481")
    with RcaClient(f"http://127.0.0.1:{free_port()}", timeout=2) as down, pytest.raises(ServerUnavailable):
        down.health()


def test_slow_server_is_a_timeout() -> None:
    # a real listener that accepts connections and never answers
    with silent_server() as url, RcaClient(url, timeout=0.3) as c, pytest.raises(ServerTimeout):
        c.health()


async def test_async_client_has_the_same_results(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        sync_incidents = c.incidents()
        sync_changes = c.changes()
    async with AsyncRcaClient(srv.url) as ac:
        assert await ac.incidents() == sync_incidents
        assert await ac.changes() == sync_changes
        assert (await ac.health()).ok
        inc = sync_incidents[0]
        assert await ac.incident(inc.id) == inc
        assert [s.id for s in await ac.suspects(inc.id)]
        with pytest.raises(NotFound):
            await ac.anomalies("nope")
    async with AsyncRcaClient(f"http://127.0.0.1:{free_port()}", timeout=1) as down:
        with pytest.raises(ServerUnavailable):
            await down.incidents()


def test_sync_and_async_expose_the_same_methods() -> None:
    public = {n for n in dir(RcaClient) if not n.startswith("_")} - {"close"}
    apublic = {n for n in dir(AsyncRcaClient) if not n.startswith("_")} - {"aclose"}
    assert public == apublic


def test_models_parse_contract_examples() -> None:
    inc = Incident.from_json({
        "id": "inc-12", "status": "OPEN", "title": "payments: p95_latency_ms up 3.1x",
        "started_at": "2026-11-30T04:00:20Z", "detected_at": "2026-11-30T04:00:40Z", "resolved_at": None,
        "services": ["payments", "checkout"], "severity": 0.83, "anomaly_count": 5,
        "top_suspect": {"id": "sus-3", "kind": "deployment", "change_id": "dep-481", "score": 0.91},
        "new_field": 1})
    assert inc.started_at == datetime(2026, 11, 30, 4, 0, 20, tzinfo=UTC)
    assert inc.top_suspect is not None and inc.top_suspect.change_id == "dep-481"
    assert inc.extra == {"new_field": 1} and inc.is_open
    ch = Change.from_json({"kind": "flag_change", "id": "flag-9", "services": ["pricing"], "ts": 1764475170,
                           "flag": "x", "rollout_percent": 25})
    assert ch.services == ["pricing"] and ch.fields == {"flag": "x", "rollout_percent": 25}
    assert parse_dt("2026-11-30T04:00:00.250+00:00").microsecond == 250000
    call = calls.incidents(status="OPEN", since=T0, limit=5)
    assert call.params == {"status": "OPEN", "since": "2026-11-30T03:00:00Z", "limit": 5}
    assert calls.series("a/b", "m 1").path == "/services/a%2Fb/metrics/m%201/series"
