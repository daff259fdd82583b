"""Export from a real server with seeded, labelled incidents; re-import with the client
loaders (polars and DuckDB) and find every row; the zip endpoint round-trips."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pyarrow.parquet as pq
import pytest

from server.cli import main
from server.export.tables import TABLES
from tests.export.conftest import History
from workbench.client import ExportError, ValidationFailed, load_duckdb, load_polars, read_manifest


def server_counts(h: History) -> dict[str, int]:
    """Row counts of every table, asked of the server's own store (plus long-form evidence)."""
    store = h.server.app.state.rca.store
    counts = store.counts()
    sus = [s for inc in store.list_incidents(limit=100_000) for s in store.list_suspects(incident_id=inc.id)]
    counts["evidence"] = sum(len(s.evidence) for s in sus)
    return {t: counts[t] for t in TABLES}


def test_export_has_every_row_of_the_server(history: History) -> None:
    manifest = read_manifest(history.export_dir)
    expected = server_counts(history)
    assert expected["incidents"] >= 3 and expected["labels"] >= 3 and expected["metrics"] > 50_000
    assert manifest["counts"] == expected
    assert manifest["schema_version"] == 1 and manifest["server_version"]
    assert manifest["time_range"]["data_first"] < manifest["time_range"]["data_last"]
    assert manifest["model"] is not None and (history.export_dir / manifest["model"]["file"]).exists()
    assert manifest["settings"]["grouping"]["gap_seconds"] == 600.0


def test_polars_and_duckdb_loaders_find_every_row(history: History) -> None:
    expected = server_counts(history)
    frames = load_polars(history.export_dir)
    assert {t: frames[t].height for t in TABLES} == expected
    con = load_duckdb(history.export_dir)
    assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES} == expected  # type: ignore[index]
    # the rows are the server's rows: every labelled cause and its incident are there
    labels = frames["labels"].filter(pl.col("verdict") == "cause")
    assert dict(zip(labels["incident_id"], labels["change_id"], strict=True)) == history.seeded.labelled
    inc = history.server.app.state.rca.store.list_incidents(limit=1)[0]
    row = frames["incidents"].filter(pl.col("id") == inc.id).row(0, named=True)
    assert row["title"] == inc.title and row["started_at"].timestamp() == pytest.approx(inc.started_at)
    # suspects carry their evidence, also long-form
    sus = frames["suspects"].filter(pl.col("incident_id") == inc.id).sort("rank")
    live = history.server.app.state.rca.store.list_suspects(incident_id=inc.id)
    assert [json.loads(e) for e in sus["evidence"]] == [s.evidence for s in live]
    ev = con.execute(f"SELECT signal, value FROM evidence WHERE suspect_id = '{live[0].id}' ORDER BY signal").fetchall()
    assert ev == sorted(live[0].evidence.items())
    # joins an analyst would write
    n = con.execute("SELECT count(*) FROM labels l JOIN changes c ON c.id = l.change_id").fetchone()[0]  # type: ignore[index]
    assert n == expected["labels"]


def test_live_server_loads_in_one_call(history: History) -> None:
    expected = server_counts(history)
    frames = load_polars(history.server.url, tables=["incidents", "metrics"])
    assert frames["incidents"].height == expected["incidents"]
    assert frames["metrics"].height == expected["metrics"]
    con = load_duckdb(history.server.url, con=duckdb.connect())
    assert con.execute("SELECT count(*) FROM logs").fetchone()[0] == expected["logs"]  # type: ignore[index]


def test_zip_endpoint_round_trips(history: History) -> None:
    with httpx.Client(base_url=history.server.url, timeout=120) as c:
        r = c.get("/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    names = set(zf.namelist())
    assert {f"{t}.parquet" for t in TABLES} | {"manifest.json", "model.bin"} == names
    manifest = json.loads(zf.read("manifest.json"))
    on_disk = read_manifest(history.export_dir)
    assert manifest["counts"] == on_disk["counts"]
    for t in TABLES:
        a = pq.read_table(io.BytesIO(zf.read(f"{t}.parquet")))
        b = pq.read_table(history.export_dir / f"{t}.parquet")
        assert a.num_rows == manifest["counts"][t]
        assert a.schema == b.schema
        if t not in ("metrics", "logs"):  # telemetry is in storage order; state tables are ordered
            assert a.equals(b)
    assert zf.read("model.bin") == (history.export_dir / "model.bin").read_bytes()


def test_filters_by_service_and_time(history: History, tmp_path: Path) -> None:
    svc = history.server.app.state.rca.store.list_incidents(limit=1)[0].services[0]
    out = tmp_path / "svc"
    assert main(["export", "--url", history.server.url, "--out", str(out), "--service", svc, "--quiet"]) == 0
    f = load_polars(out)
    assert f["metrics"].height > 0 and set(f["metrics"]["service"].unique()) == {svc}
    assert all(svc in s for s in f["incidents"]["services"].to_list())
    assert set(f["suspects"]["incident_id"].unique()) <= set(f["incidents"]["id"])
    day = load_polars(history.small_dir)
    mf = read_manifest(history.small_dir)
    lo, hi = (pl.lit(mf["time_range"][k]).str.to_datetime(time_zone="UTC") for k in ("since", "until"))
    full = load_polars(history.export_dir)["metrics"]
    assert day["metrics"].height == full.filter(pl.col("ts").is_between(lo, hi)).height
    assert 0 < day["incidents"].height < full.height


def test_bad_input_is_a_clear_error(history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with httpx.Client(base_url=history.server.url) as c:
        r = c.get("/export", params={"since": "yesterday-ish"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
        r = c.get("/export", params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"})
        assert r.status_code == 422 and "until" in r.text
    assert main(["export", "--url", history.server.url, "--out", str(tmp_path / "x"), "--quiet",
                 "--since", "soon"]) == 1
    assert "since" in capsys.readouterr().err
    assert main(["export", "--url", history.server.url, "--out", str(history.export_dir), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["export", "--url", "http://127.0.0.1:9", "--out", str(tmp_path / "y"), "--quiet"]) == 1
    with pytest.raises(ExportError):
        load_polars(tmp_path)
    with pytest.raises(ValidationFailed):
        load_polars(history.server.url, since="not a time")


def test_openapi_declares_the_zip(history: History) -> None:
    doc = httpx.get(history.server.url + "/openapi.json").json()
    content = doc["paths"]["/export"]["get"]["responses"]["200"]["content"]
    assert content["application/zip"]["schema"] == {"type": "string", "format": "binary"}
