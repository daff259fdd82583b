"""Store conformance: one suite, parametrised over every backend (ibis-style: one
fixture whose params are the backends). DuckDB runs on a file in tmp_path; PostgreSQL
on the real server (tests/conftest.py starts it), one fresh database per test;
ClickHouse through chDB (the real ClickHouse engine, in process) on a directory in
tmp_path, for the telemetry tests (``make_telemetry``), paired with a DuckDB state store.

A new backend joins by adding a factory to BACKENDS (both stores) or TELEMETRY_BACKENDS
(telemetry only); it must pass every test of its fixture here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from server.model import Anomaly, Change, Edge, Incident, Label, Suspect, SuspectRef
from server.store.base import Store, StoreError
from server.store.duckdb import DuckDBStore
from server.store.postgres import PostgresStore


def _duckdb(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return lambda: DuckDBStore(tmp_path / "rca.duckdb")


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    dsn = request.getfixturevalue("pg_database")
    return lambda: PostgresStore(dsn, max_size=4)


def _clickhouse(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    from server.store.clickhouse import ClickHouseStore
    from server.store.split import SplitStore

    def open_one() -> Store:
        state = DuckDBStore(tmp_path / "state.duckdb")
        try:
            return SplitStore(telemetry=ClickHouseStore(path=tmp_path / "chdb"), state=state)
        except BaseException:
            state.close()
            raise

    return open_one


Factory = Callable[[pytest.FixtureRequest, Path], Callable[[], Store]]
BACKENDS: dict[str, Factory] = {
    "duckdb": _duckdb,
    "postgres": _postgres,
}
TELEMETRY_BACKENDS: dict[str, Factory] = {**BACKENDS, "clickhouse": _clickhouse}
LABELLED_BACKENDS: dict[str, Factory] = {"duckdb": _duckdb, "clickhouse": _clickhouse}


def _opener(factory: Factory, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []
    open_one = factory(request, tmp_path)

    def factory() -> Store:
        s = open_one()
        opened.append(s)
        return s

    yield factory
    for s in opened:
        with contextlib.suppress(Exception):
            s.close()


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the backend's store; calling it again reopens the same data."""
    yield from _opener(BACKENDS[request.param], request, tmp_path)


@pytest.fixture(params=sorted(TELEMETRY_BACKENDS))
def make_telemetry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Like make_store, over every backend of the telemetry store (ClickHouse included)."""
    yield from _opener(TELEMETRY_BACKENDS[request.param], request, tmp_path)


@pytest.fixture(params=sorted(LABELLED_BACKENDS))
def labelled_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """The backends whose telemetry catalogues label sets (not PostgreSQL yet)."""
    yield from _opener(LABELLED_BACKENDS[request.param], request, tmp_path)


def _metrics(service: str, metric: str, ts: list[float], values: list[float]) -> pa.Table:
    n = len(ts)
    return pa.table({"service": [service] * n, "metric": [metric] * n, "ts": pa.array(ts, pa.float64()),
                     "value": pa.array(values, pa.float64()), "labels": pa.nulls(n, pa.string())})


def test_metrics_series_and_catalogue(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    assert s.insert_metrics(table=_metrics("a", "lat", [3.0, 1.0, 2.0], [30, 10, 20])) == 3
    s.insert_metrics(table=_metrics("a", "qps", [1.0], [5]))
    s.insert_metrics(table=_metrics("b", "lat", [10.0, 20.0], [1, 2]))
    ts, v = s.get_series(service="a", metric="lat")
    assert ts.tolist() == [1.0, 2.0, 3.0] and v.tolist() == [10, 20, 30]
    ts, v = s.get_series(service="a", metric="lat", since=1.5, until=2.5)
    assert ts.tolist() == [2.0]
    ts, v = s.get_series(service="a", metric="lat", step=2.0)
    assert ts.tolist() == [0.0, 2.0] and v.tolist() == [10.0, 25.0]
    infos = s.list_series()
    assert [(i.service, i.metric, i.points, i.first_ts, i.last_ts) for i in infos] == [
        ("a", "lat", 3, 1.0, 3.0), ("a", "qps", 1, 1.0, 1.0), ("b", "lat", 2, 10.0, 20.0)]
    assert [i.metric for i in s.list_series(service="a")] == ["lat", "qps"]
    many = s.get_series_many(services=["a"], since=0, until=2)
    assert sorted(many) == [("a", "lat"), ("a", "qps")]
    assert many[("a", "lat")][1].tolist() == [10, 20]
    assert s.list_services()[0] == {"name": "a", "metrics": ["lat", "qps"], "last_seen": 3.0}


def _py(col: object) -> list[object]:
    """A LogWindow column as a list (backends may return lists or Arrow arrays)."""
    return col.to_pylist() if hasattr(col, "to_pylist") else list(col)  # type: ignore[call-overload]


def test_logs_by_level_and_window(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    t = pa.table({"service": ["a", "a", "b", "a"], "ts": [1.0, 2.0, 3.0, 4.0],
                  "level": ["INFO", "ERROR", "WARN", "FATAL"], "message": ["ok", "boom", "slow", "dead"],
                  "attributes": pa.nulls(4, pa.string())})
    assert s.insert_logs(table=t) == 4
    w = s.get_logs(services=["a"], since=0, until=10)
    assert _py(w.message) == ["boom", "dead"] and len(w) == 2
    w = s.get_logs(services=None, since=0, until=3, min_level="INFO")
    assert _py(w.message) == ["ok", "boom", "slow"] and _py(w.level) == ["INFO", "ERROR", "WARN"]
    assert _py(w.ts) == [1.0, 2.0, 3.0] and _py(w.service) == ["a", "a", "b"]
    assert s.count_logs(services=None, since=0, until=10) == 4


def test_changes_idempotent_and_filtered(make_store: Callable[[], Store]) -> None:
    s = make_store()
    d = Change(id="dep-1", kind="deployment", services=["a"], ts=10.0, author="al",
               fields={"version": "v2", "diff": {"files": [{"path": "x.py", "added": 1, "removed": 0}]}})
    f = Change(id="flag-1", kind="flag_change", services=["a", "b"], ts=20.0, fields={"flag": "f"})
    assert s.upsert_changes(changes=[d, f]) == ["dep-1", "flag-1"]
    assert s.upsert_changes(changes=[d]) == []
    assert [c.id for c in s.list_changes()] == ["flag-1", "dep-1"]
    assert [c.id for c in s.list_changes(service="b")] == ["flag-1"]
    assert [c.id for c in s.list_changes(since=15)] == ["flag-1"]
    assert [c.id for c in s.list_changes(until=15, kind="deployment")] == ["dep-1"]
    got = s.get_change(change_id="dep-1")
    assert got is not None and got.diff_files[0].path == "x.py" and got.author == "al"
    assert s.get_change(change_id="nope") is None
    assert [c.id for c in s.get_changes(change_ids=["flag-1", "dep-1"])] == ["dep-1", "flag-1"]


def test_topology_edges_accumulate(make_store: Callable[[], Store]) -> None:
    s = make_store()
    assert s.add_edges(edges=[Edge("a", "b"), Edge("b", "c")]) == 2
    assert s.add_edges(edges=[Edge("a", "b")]) == 0
    assert [(e.source, e.target) for e in s.get_topology()] == [("a", "b"), ("b", "c")]


def test_incidents_anomalies_suspects_labels_models(make_store: Callable[[], Store]) -> None:
    s = make_store()
    inc_id = s.next_id(prefix="inc")
    assert inc_id == "inc-1" and s.next_id(prefix="inc") == "inc-2"
    a = Anomaly(id="an-1", service="a", metric="lat", started_at=100, detected_at=120, direction="up",
                score=7.0, baseline=10, observed=30, incident_id=inc_id, join_reason="first", channel="shift",
                reason="lat rose to 30 from a baseline of 10 (+200%, 7.0x its usual noise) since ...")
    s.save_anomalies(anomalies=[a])
    got = s.list_anomalies(incident_id=inc_id)[0]
    assert (got.channel, got.reason) == (a.channel, a.reason)  # why it is anomalous is stored with it
    inc = Incident(id=inc_id, status="OPEN", title="a: lat up 3.0x", started_at=100, detected_at=120,
                   services=["a"], severity=0.5, anomaly_count=1)
    s.save_incidents(incidents=[inc])
    assert s.list_anomalies(open_only=True)[0].id == "an-1"
    a.ended_at = 500
    s.save_anomalies(anomalies=[a])
    assert s.list_anomalies(open_only=True) == []
    sus = Suspect(id="sus-1", incident_id=inc_id, rank=1, kind="deployment", change_id="dep-1", service="a",
                  ts=90.0, score=0.9, evidence={"time_proximity": 0.8}, explanation="because")
    s.replace_suspects(incident_id=inc_id, suspects=[sus])
    assert s.list_suspects(incident_id=inc_id) == [sus]
    inc.top_suspect = SuspectRef(id="sus-1", kind="deployment", change_id="dep-1", score=0.9)
    inc.status = "RESOLVED"
    inc.resolved_at = 500
    s.save_incidents(incidents=[inc])
    assert s.get_incident(incident_id=inc_id) == inc
    assert s.list_incidents(status="OPEN") == []
    assert [i.id for i in s.list_incidents(service="a")] == [inc_id]
    assert s.list_incidents(since=101) == []
    s.replace_suspects(incident_id=inc_id, suspects=[])
    assert s.list_suspects(incident_id=inc_id) == []
    lb = Label(id="lbl-1", incident_id=inc_id, change_id="dep-1", verdict="cause", created_at=1.0, author="al")
    s.add_label(label=lb)
    assert s.list_labels(incident_id=inc_id) == [lb]
    # labels follow their incident when it is merged into another
    assert s.reassign_labels(incident_id=inc_id, to="inc-9") == 1
    assert s.list_labels(incident_id=inc_id) == []
    assert [x.id for x in s.list_labels(incident_id="inc-9")] == ["lbl-1"]
    assert s.reassign_labels(incident_id="inc-404", to="inc-9") == 0
    assert s.reassign_labels(incident_id="inc-9", to=inc_id) == 1
    assert s.load_latest_model() is None
    s.save_model(version=1, blob=b"m1", info={"labels": 1})
    s.save_model(version=2, blob=b"m2", info={"labels": 2})
    assert s.load_latest_model() == (2, b"m2", {"labels": 2})
    assert s.list_model_infos() == [(1, {"labels": 1}), (2, {"labels": 2})]


def test_data_survives_reopen(make_telemetry: Callable[[], Store], tmp_path: Path) -> None:
    s = make_telemetry()
    s.insert_metrics(table=_metrics("a", "lat", [1.0, 2.0], [1, 2]))
    s.upsert_changes(changes=[Change(id="c", kind="config_change", services=["a"], ts=1.0, fields={"key": "k"})])
    s.next_id(prefix="inc")
    s.close()
    s2 = make_telemetry()
    assert s2.list_series()[0].points == 2
    assert s2.get_change(change_id="c") is not None
    assert s2.next_id(prefix="inc") == "inc-2"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    DuckDBStore(tmp_path / "x.duckdb").close()
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="newer release"):
        DuckDBStore(tmp_path / "x.duckdb")


def test_failed_insert_stores_nothing(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    bad = pa.table({"service": pa.array([None], pa.string()), "metric": ["m"], "ts": [1.0], "value": [1.0],
                    "labels": pa.nulls(1, pa.string())})
    with pytest.raises(StoreError):
        s.insert_metrics(table=bad)
    assert s.list_series() == []
    assert np.asarray(s.get_series(service="a", metric="m")[0]).size == 0


# ---- labelled series: a series is (service, metric, label set) ------------------------------
# Not on PostgreSQL yet: its store does not catalogue label sets (it raises StoreError for
# label matchers and get_labelled_series).


def _labelled(service: str, metric: str, rows: list[tuple[dict[str, str] | None, float, float]]) -> pa.Table:
    from server.model.labels import canonical_labels

    return pa.table({"service": [service] * len(rows), "metric": [metric] * len(rows),
                     "ts": pa.array([r[1] for r in rows], pa.float64()),
                     "value": pa.array([r[2] for r in rows], pa.float64()),
                     "labels": pa.array([canonical_labels(r[0]) for r in rows], pa.string())})


def _pods(s: Store) -> None:
    rows: list[tuple[dict[str, str] | None, float, float]] = []
    for t in (1.0, 2.0, 3.0):
        rows += [({"pod": "a", "zone": "z1"}, t, 10 * t), ({"pod": "b", "zone": "z1"}, t, 20 * t),
                 ({"zone": "z2", "pod": "c"}, t, 60 * t)]
    s.insert_metrics(table=_labelled("web", "lat", rows))
    s.insert_metrics(table=_labelled("web", "qps", [(None, 1.0, 5.0), (None, 2.0, 7.0)]))


def test_catalogue_has_one_row_per_label_set(labelled_store: Callable[[], Store]) -> None:
    s = labelled_store()
    _pods(s)
    infos = s.list_series(service="web")
    assert [(i.metric, i.labels, i.points) for i in infos] == [
        ("lat", {"pod": "a", "zone": "z1"}, 3), ("lat", {"pod": "b", "zone": "z1"}, 3),
        ("lat", {"pod": "c", "zone": "z2"}, 3), ("qps", {}, 2)]
    # the service lists each metric once
    assert s.list_services() == [{"name": "web", "metrics": ["lat", "qps"], "last_seen": 3.0}]


def test_series_label_matchers_and_average(labelled_store: Callable[[], Store]) -> None:
    s = labelled_store()
    _pods(s)
    ts, v = s.get_series(service="web", metric="lat", labels={"pod": "b"})
    assert ts.tolist() == [1.0, 2.0, 3.0] and v.tolist() == [20.0, 40.0, 60.0]
    # without matchers: every label set averaged per timestamp
    ts, v = s.get_series(service="web", metric="lat")
    assert ts.tolist() == [1.0, 2.0, 3.0] and v.tolist() == [30.0, 60.0, 90.0]
    ts, v = s.get_series(service="web", metric="lat", labels={"zone": "z1"})
    assert v.tolist() == [15.0, 30.0, 45.0]
    ts, v = s.get_series(service="web", metric="lat", labels={"zone": "z1"}, step=2.0)
    assert ts.tolist() == [0.0, 2.0] and v.tolist() == [15.0, 37.5]
    assert s.get_series(service="web", metric="lat", labels={"pod": "zz"})[0].size == 0
    # an empty matcher value also matches a label set without that key
    assert s.get_series(service="web", metric="qps", labels={"pod": ""})[1].tolist() == [5.0, 7.0]
    # service-level view: label sets averaged per timestamp
    many = s.get_series_many(services=["web"], since=0, until=10)
    assert many[("web", "lat")][0].tolist() == [1.0, 2.0, 3.0]
    assert many[("web", "lat")][1].tolist() == [30.0, 60.0, 90.0]
    assert many[("web", "qps")][1].tolist() == [5.0, 7.0]


def test_get_labelled_series(labelled_store: Callable[[], Store]) -> None:
    s = labelled_store()
    _pods(s)
    out = s.get_labelled_series(service="web", metric="lat", since=2.0, until=3.0)
    assert [(lab, t.tolist(), v.tolist()) for lab, t, v in out] == [
        ({"pod": "a", "zone": "z1"}, [2.0, 3.0], [20.0, 30.0]),
        ({"pod": "b", "zone": "z1"}, [2.0, 3.0], [40.0, 60.0]),
        ({"pod": "c", "zone": "z2"}, [2.0, 3.0], [120.0, 180.0])]
    unl = s.get_labelled_series(service="web", metric="qps", since=0.0, until=10.0)
    assert [(lab, t.tolist()) for lab, t, _ in unl] == [({}, [1.0, 2.0])]
    assert s.get_labelled_series(service="web", metric="nope", since=0.0, until=10.0) == []


def test_cardinality_limits_reject_whole_batch(labelled_store: Callable[[], Store]) -> None:
    from server.store.base import CardinalityError, SeriesLimits

    s = labelled_store()
    lim = SeriesLimits(per_service=5, per_metric=3, total=100)
    s.insert_metrics(table=_labelled("web", "lat", [({"pod": str(i)}, 1.0, 1.0) for i in range(3)]), limits=lim)
    # existing series never count as new
    s.insert_metrics(table=_labelled("web", "lat", [({"pod": str(i)}, 2.0, 1.0) for i in range(3)]), limits=lim)
    with pytest.raises(CardinalityError) as err:
        s.insert_metrics(table=_labelled("web", "lat", [({"pod": "9"}, 3.0, 1.0), (None, 3.0, 1.0)]), limits=lim)
    assert (err.value.limit, err.value.existing, err.value.new, err.value.maximum) == (
        "max_series_per_metric", 3, 2, 3) and "web/lat" in str(err.value)
    assert s.get_series(service="web", metric="lat", since=3.0)[0].size == 0
    s.insert_metrics(table=_labelled("web", "qps", [({"pod": str(i)}, 1.0, 1.0) for i in range(2)]), limits=lim)
    with pytest.raises(CardinalityError, match="service web") as err:
        s.insert_metrics(table=_labelled("web", "cpu", [(None, 1.0, 1.0), ({"pod": "x"}, 1.0, 1.0),
                                                         ({"pod": "y"}, 4.0, 1.0)]), limits=lim)
    assert err.value.limit == "max_series_per_service" and (err.value.existing, err.value.new) == (5, 3)
    with pytest.raises(CardinalityError, match="the store"):
        s.insert_metrics(table=_labelled("other", "m", [(None, 1.0, 1.0)]), limits=SeriesLimits(total=5))
    assert len(s.list_series()) == 5 and s.get_series(service="web", metric="cpu")[0].size == 0
    # no limits: accepted
    s.insert_metrics(table=_labelled("web", "cpu", [(None, 1.0, 1.0)]))
    assert len(s.list_series()) == 6


def test_labelled_catalogue_survives_reopen(labelled_store: Callable[[], Store]) -> None:
    s = labelled_store()
    _pods(s)
    s.save_anomalies(anomalies=[Anomaly(id="an-1", service="web", metric="lat", started_at=1.0, detected_at=2.0,
                                        direction="up", score=5.0, baseline=1.0, observed=3.0,
                                        labels={"pod": "b", "zone": "z1"}),
                                Anomaly(id="an-2", service="web", metric="qps", started_at=1.0, detected_at=2.0,
                                        direction="down", score=5.0, baseline=1.0, observed=0.5)])
    s.close()
    s2 = labelled_store()
    assert [i.labels for i in s2.list_series(service="web")][:3] == [
        {"pod": "a", "zone": "z1"}, {"pod": "b", "zone": "z1"}, {"pod": "c", "zone": "z2"}]
    assert s2.get_series(service="web", metric="lat", labels={"pod": "c"})[1].tolist() == [60.0, 120.0, 180.0]
    assert [(a.id, a.labels) for a in s2.list_anomalies()] == [("an-1", {"pod": "b", "zone": "z1"}),
                                                               ("an-2", None)]


def test_schema_3_data_dir_is_migrated(tmp_path: Path) -> None:
    """A data dir written before anomalies had labels opens, and its anomalies read back."""
    import duckdb

    s = DuckDBStore(tmp_path / "old.duckdb")
    s.close()
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    for col in ("labels", "channel", "reason"):  # columns later migrations add
        con.execute(f"ALTER TABLE anomalies DROP COLUMN {col}")
    con.execute("INSERT INTO anomalies VALUES ('an-1', NULL, 'a', 'm', 1, 2, NULL, 'up', 3, 1, 2, NULL)")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    s2 = DuckDBStore(tmp_path / "old.duckdb")
    from server.store.duckdb import SCHEMA_VERSION

    assert s2.schema_version() == SCHEMA_VERSION  # 3 -> 4 (anomaly labels) and every later migration
    assert [(a.id, a.labels) for a in s2.list_anomalies()] == [("an-1", None)]
    s2.close()


def test_alerts_upsert_keeps_incident_and_reports_changes(make_store: Callable[[], Store]) -> None:
    from server.model import Alert

    s = make_store()
    a = Alert(id="am-f-1", name="HighLatency", services=["checkout"], starts_at=100.0,
              labels={"severity": "page"}, annotations={"summary": "slow"}, fingerprint="f", source="alertmanager")
    assert s.upsert_alerts(alerts=[a]) == ["am-f-1"]
    assert s.upsert_alerts(alerts=[Alert(**{**_fields(a)})]) == []  # identical repeat: nothing changed
    got = s.list_alerts(alert_ids=["am-f-1"])[0]
    got.incident_id, got.join_reason = "inc-1", "opened by alert HighLatency"
    s.save_alerts(alerts=[got])
    resolved = Alert(**{**_fields(a), "status": "resolved", "ends_at": 400.0})
    assert s.upsert_alerts(alerts=[resolved]) == ["am-f-1"]
    (back,) = s.list_alerts(incident_ids=["inc-1"])
    assert (back.status, back.ends_at, back.incident_id, back.labels, back.join_reason) == (
        "resolved", 400.0, "inc-1", {"severity": "page"}, "opened by alert HighLatency")
    assert s.list_alerts(unassigned=True) == []


def _fields(a: object) -> dict[str, object]:
    return {k: getattr(a, k) for k in a.__slots__}  # type: ignore[attr-defined]


def test_schema_1_data_dir_is_migrated(tmp_path: Path) -> None:
    import duckdb

    from server.store import duckdb as ddb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for stmt in ddb._SCHEMA_V1:
        con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()
    s = DuckDBStore(path)
    assert s.schema_version() == ddb.SCHEMA_VERSION
    assert s.list_alerts() == []
    s.close()



def test_telemetry_streams_in_bounded_batches(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    s.insert_metrics(table=_metrics("a", "lat", [float(i) for i in range(1000)], [float(i) for i in range(1000)]))
    s.insert_metrics(table=_metrics("b", "lat", [float(i) for i in range(500)], [1.0] * 500))
    batches = list(s.iter_metrics(batch_rows=128))
    assert all(0 < b.num_rows <= 128 for b in batches)
    got = pa.Table.from_batches(batches)
    assert got.column_names == ["service", "metric", "ts", "value", "labels"] and got.num_rows == 1500
    assert sorted(got.column("value").to_pylist()[:1000]) == sorted(float(i) for i in range(1000))
    only = pa.Table.from_batches(list(s.iter_metrics(services=["b"], since=100.0, until=199.0)))
    assert only.num_rows == 100 and set(only.column("service").to_pylist()) == {"b"}
    # a writer is not blocked by an open reader (the reader keeps its snapshot)
    it = s.iter_metrics(batch_rows=100)
    first = next(it)
    s.insert_metrics(table=_metrics("c", "lat", [1.0], [1.0]))
    assert first.num_rows + sum(b.num_rows for b in it) == 1500
    logs = pa.table({"service": ["a", "b", "a"], "ts": pa.array([1.0, 2.0, 3.0]), "level": ["INFO", "ERROR", "WARN"],
                     "message": ["x", "y", "z"], "attributes": pa.nulls(3, pa.string())})
    s.insert_logs(table=logs)
    got_logs = pa.Table.from_batches(list(s.iter_logs(services=["a"], since=2.0)))
    assert got_logs.column_names == ["service", "ts", "level", "message", "attributes"]
    assert got_logs.column("message").to_pylist() == ["z"]
    assert list(s.iter_logs(since=10.0)) == []
def test_failed_log_insert_stores_nothing(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    bad = pa.table({"service": ["a", "a"], "ts": [1.0, 2.0], "level": ["ERROR", None], "message": ["x", "y"],
                    "attributes": pa.nulls(2, pa.string())})
    with pytest.raises(StoreError):
        s.insert_logs(table=bad)
    assert s.count_logs(services=None, since=0, until=10) == 0


def _incident(inc_id: str, started: float, services: list[str]) -> Incident:
    return Incident(id=inc_id, status="OPEN", title=f"{inc_id} title", started_at=started, detected_at=started + 1,
                    services=services, severity=0.5, anomaly_count=1)


def _anomaly(an_id: str, inc_id: str, service: str, started: float) -> Anomaly:
    return Anomaly(id=an_id, service=service, metric="lat", started_at=started, detected_at=started + 1,
                   direction="up", score=5.0, baseline=1.0, observed=3.0, incident_id=inc_id, join_reason="first")


def _merge(s: Store, other: str, target: str) -> None:
    with s.unit_of_work() as tx:
        moved = tx.list_anomalies(incident_id=other)
        for m in moved:
            m.incident_id = target
        tx.save_anomalies(anomalies=moved)
        tx.reassign_labels(incident_id=other, to=target)
        tx.delete_incident(incident_id=other)
        tx.record_merge(merged=other, into=target)


def test_incident_merge_in_one_unit_of_work(make_store: Callable[[], Store]) -> None:
    s = make_store()
    s.save_incidents(incidents=[_incident("inc-1", 100, ["a"]), _incident("inc-2", 150, ["b"])])
    s.save_anomalies(anomalies=[_anomaly("an-1", "inc-1", "a", 100), _anomaly("an-2", "inc-2", "b", 150)])
    s.add_label(label=Label(id="lbl-1", incident_id="inc-2", change_id="dep-1", verdict="cause", created_at=1.0))
    _merge(s, "inc-2", "inc-1")
    assert s.get_incident(incident_id="inc-2") is None
    assert [a.id for a in s.list_anomalies(incident_id="inc-1")] == ["an-1", "an-2"]
    assert [lb.incident_id for lb in s.list_labels()] == ["inc-1"]
    assert s.merged_into(incident_id="inc-2") == "inc-1"
    assert s.merged_into(incident_id="inc-1") is None
    # a label sent to the merged id lands on the survivor
    got = s.add_label(label=Label(id="lbl-2", incident_id="inc-2", change_id="dep-2", verdict="not_cause",
                                  created_at=2.0))
    assert got.incident_id == "inc-1"
    assert [lb.id for lb in s.list_labels(incident_id="inc-1")] == ["lbl-1", "lbl-2"]
    # re-adding a label (a redelivery) stores it once
    s.add_label(label=got)
    assert len(s.list_labels()) == 2
    # merging the survivor again: the first merged id follows to the newest survivor
    s.save_incidents(incidents=[_incident("inc-0", 50, ["c"])])
    _merge(s, "inc-1", "inc-0")
    assert s.merged_into(incident_id="inc-2") == "inc-0"
    assert s.merged_into(incident_id="inc-1") == "inc-0"
    assert {lb.incident_id for lb in s.list_labels()} == {"inc-0"}


def test_unit_of_work_rolls_back_every_write(make_store: Callable[[], Store]) -> None:
    s = make_store()
    s.save_incidents(incidents=[_incident("inc-1", 100, ["a"]), _incident("inc-2", 150, ["b"])])
    s.save_anomalies(anomalies=[_anomaly("an-2", "inc-2", "b", 150)])
    s.add_label(label=Label(id="lbl-1", incident_id="inc-2", change_id="dep-1", verdict="cause", created_at=1.0))
    with pytest.raises(RuntimeError), s.unit_of_work() as tx:
        tx.save_anomalies(anomalies=[_anomaly("an-2", "inc-1", "b", 150)])
        tx.reassign_labels(incident_id="inc-2", to="inc-1")
        tx.delete_incident(incident_id="inc-2")
        tx.record_merge(merged="inc-2", into="inc-1")
        assert tx.get_incident(incident_id="inc-2") is None  # the block sees its own writes
        raise RuntimeError("crash mid-merge")
    assert s.get_incident(incident_id="inc-2") is not None
    assert s.list_anomalies(incident_id="inc-2")[0].id == "an-2"
    assert s.list_labels()[0].incident_id == "inc-2"
    assert s.merged_into(incident_id="inc-2") is None
    # a driver error inside the block is a StoreError and rolls back too
    with pytest.raises(StoreError), s.unit_of_work() as tx:
        tx.delete_incident(incident_id="inc-2")
        tx.add_edges(edges=[Edge(None, "b")])  # type: ignore[arg-type]  # a key column is NOT NULL
    assert s.get_incident(incident_id="inc-2") is not None


def test_ids_are_unique_increasing_and_named(make_store: Callable[[], Store]) -> None:
    s = make_store()
    ids = s.next_ids(prefix="sus", n=3) + [s.next_id(prefix="sus")] + s.next_ids(prefix="sus", n=2)
    assert ids == [f"sus-{i}" for i in range(1, 7)]
    assert s.next_ids(prefix="sus", n=0) == []
    assert s.next_id(prefix="newkind") == "newkind-1"  # a prefix never seen before
    with pytest.raises(StoreError, match="prefix"):
        s.next_id(prefix="Bad Prefix;")


def test_store_uid_is_stable(make_store: Callable[[], Store]) -> None:
    s = make_store()
    uid = s.store_uid()
    assert uid and s.store_uid() == uid
    s.close()
    assert make_store().store_uid() == uid


def test_checkpoints_keep_the_newest_offset(make_store: Callable[[], Store]) -> None:
    s = make_store()
    assert s.load_checkpoint(stage="detector", partition=0) is None
    assert s.save_checkpoint(stage="detector", partition=0, offset=10, state=b"s10")
    assert s.save_checkpoint(stage="detector", partition=1, offset=5, state=b"p1")
    assert s.save_checkpoint(stage="detector", partition=0, offset=20, state=b"s20")
    # a worker that lost the partition in a rebalance writes late: refused
    assert not s.save_checkpoint(stage="detector", partition=0, offset=15, state=b"stale")
    cp = s.load_checkpoint(stage="detector", partition=0)
    assert cp is not None and (cp.offset, cp.state) == (20, b"s20") and cp.saved_at > 0
    assert [(c.partition, c.offset) for c in s.list_checkpoints(stage="detector")] == [(0, 20), (1, 5)]
    assert s.list_checkpoints(stage="rca") == []
    s.close()
    again = make_store().load_checkpoint(stage="detector", partition=1)
    assert again is not None and again.state == b"p1"


def test_ingest_journal_is_gap_free_and_rolls_back_with_its_unit_of_work(make_store: Callable[[], Store]) -> None:
    s = make_store()
    assert s.journal_end(log="rca.events") == 0 and s.read_journal(log="rca.events", since=0, until=9) == []
    assert [s.append_journal(log="rca.events", key=b"k", value=b"v%d" % i) for i in range(3)] == [0, 1, 2]
    assert s.append_journal(log="other", key=b"", value=b"x") == 0  # one sequence per log
    with pytest.raises(RuntimeError), s.unit_of_work() as uow:  # the record goes with the data or not at all
        uow.upsert_changes(changes=[Change(id="dep-j", kind="deployment", services=["a"], ts=1.0)])
        assert uow.append_journal(log="rca.events", key=b"k", value=b"lost") == 3
        raise RuntimeError("crash before commit")
    assert s.get_change(change_id="dep-j") is None
    with s.unit_of_work() as uow:
        uow.upsert_changes(changes=[Change(id="dep-j", kind="deployment", services=["a"], ts=1.0)])
        assert uow.append_journal(log="rca.events", key=b"k", value=b"kept") == 3
    assert [(e.seq, e.value) for e in s.read_journal(log="rca.events", since=1, until=10)] == [
        (1, b"v1"), (2, b"v2"), (3, b"kept")]
    assert s.trim_journal(log="rca.events", before=2) == 2
    assert [e.seq for e in s.read_journal(log="rca.events", since=0, until=10)] == [2, 3]
    s.close()
    again = make_store()
    assert again.journal_end(log="rca.events") == 4 and again.journal_end(log="other") == 1


def test_before_after_and_log_patterns(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    s.insert_metrics(table=_metrics("a", "lat", [1.0, 2.0, 3.0, 4.0, 5.0], [10, 10, 30, 30, 50]))
    s.insert_metrics(table=_metrics("b", "lat", [1.0], [7]))
    ba = s.series_before_after(services=["a", "b"], at=3.0, before=2.0, after=1.0)
    assert [(x.service, x.metric) for x in ba] == [("a", "lat"), ("b", "lat")]
    a = ba[0]
    assert (a.before.n, a.before.mean, a.before.std) == (2, 10.0, 0.0)
    assert (a.after.n, a.after.mean, a.after.std) == (2, 30.0, 0.0)
    assert ba[1].before.n == 1 and ba[1].after.n == 0 and ba[1].after.mean is None
    assert s.series_before_after(services=["zzz"], at=3.0, before=1.0, after=1.0) == []
    t = pa.table({"service": ["a", "a", "a", "b", "a"], "ts": [1.0, 2.0, 3.0, 4.0, 50.0],
                  "level": ["ERROR", "ERROR", "INFO", "WARN", "ERROR"],
                  "message": ["timeout", "timeout", "ok", "slow", "timeout"],
                  "attributes": pa.nulls(5, pa.string())})
    s.insert_logs(table=t)
    pats = s.log_pattern_counts(services=None, since=0, until=10)
    assert [(p.service, p.level, p.message, p.count) for p in pats] == [
        ("a", "ERROR", "timeout", 2), ("b", "WARN", "slow", 1)]
    assert [p.message for p in s.log_pattern_counts(services=["a"], since=0, until=100, min_level="INFO")] == [
        "timeout", "ok"]


def test_change_services_and_list_services(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    s.insert_metrics(table=_metrics("a", "lat", [5.0], [1]))
    s.upsert_changes(changes=[Change(id="f", kind="flag_change", services=["a", "z"], ts=9.0, fields={}),
                              Change(id="d", kind="deployment", services=["z"], ts=3.0, fields={})])
    assert s.change_services() == {"a": 9.0, "z": 9.0}
    assert s.list_services() == [{"name": "a", "metrics": ["lat"], "last_seen": 9.0},
                                 {"name": "z", "metrics": [], "last_seen": 9.0}]


def test_large_metric_batch_round_trips(make_telemetry: Callable[[], Store]) -> None:
    s = make_telemetry()
    rng = np.random.default_rng(3)
    n = 20_000
    svc = np.array(["s0", "s1", "s2"])[rng.integers(0, 3, n)]
    ts = np.arange(n, dtype=np.float64)
    vals = rng.normal(size=n)
    labels = [None] * n
    labels[7] = '{"pod": "p-1"}'
    s.insert_metrics(table=pa.table({"service": svc.tolist(), "metric": ["m"] * n, "ts": ts, "value": vals,
                                     "labels": pa.array(labels, pa.string())}))
    got_ts, got_v = s.get_series(service=str(svc[7]), metric="m")
    want = svc == svc[7]
    assert np.array_equal(got_ts, ts[want]) and np.array_equal(got_v, vals[want])
    assert sum(i.points for i in s.list_series()) == n
    many = s.get_series_many(services=["s0", "s2"], since=100.0, until=199.0)
    assert sorted(many) == [("s0", "m"), ("s2", "m")]
    assert sum(len(v[0]) for v in many.values()) == int(((svc != "s1") & (ts >= 100) & (ts <= 199)).sum())
