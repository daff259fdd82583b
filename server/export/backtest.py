"""Backtest: replay an exported period into a fresh embedded server with changed
settings and diff its incidents and rankings against the export (or against a replay
with unchanged settings).

Replay goes through the HTTP contract in event-time order (per 10-minute chunk of event
time: changes, then logs, then metric points; topology first), like any client. The
exported ranking model (``model.bin``) is installed in the fresh server first unless
``model=False``, so ranking differences come from the settings, not from a missing model.
Labels are not replayed: they only score the runs (AC@k of the labelled causes).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ValidationError

from server.export.archive import MANIFEST
from server.export.compare import Diff, Run, RunIncident, carry_causes, compare
from server.export.tables import EXPORT_SCHEMA_VERSION
from server.settings import Settings
from server.sim.replay import post_changes, post_edges, post_logs, post_metrics, wait_idle
from server.timeutil import iso, parse_ts

#: Settings that are infrastructure, not detection or ranking behaviour.
NOT_TUNABLE = ("role", "host", "port", "data_dir", "log_level", "store", "bus", "api", "auth")
DB_FILE = "rca.duckdb"


class BacktestError(ValueError):
    """Bad input: an unknown or invalid ``--set`` key or value, or an unusable export."""


# ---- settings overrides ------------------------------------------------------------------


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def tunable_keys() -> list[str]:
    """Every ``group.field`` of the behaviour settings groups (``detector.<field>`` are the
    RCA_DETECTOR__* settings, the fields of server.detector.core.DetectorConfig)."""
    keys = []
    for name, info in Settings.model_fields.items():
        if name in NOT_TUNABLE:
            continue
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += [f"{name}.{sub}" for sub in ann.model_fields]
        else:
            keys.append(name)
    return sorted(keys)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["grouping.gap_seconds=300", "detector.h=12"]`` -> ``{"grouping.gap_seconds": 300, ...}``
    (values parsed as JSON when they are JSON, else kept as strings; checked later)."""
    out: dict[str, Any] = {}
    for p in pairs:
        key, sep, raw = p.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BacktestError(f"--set {p!r}: expected key=value, e.g. grouping.gap_seconds=300")
        out[key] = _value(raw.strip())
    return out


def apply_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Settings keyword arguments: ``base`` (the exporting server's settings groups) with
    ``overrides`` applied; raises :class:`BacktestError` naming a bad key or value."""
    merged: dict[str, Any] = json.loads(json.dumps(dict(base)))
    merged = {k: v for k, v in merged.items() if k in Settings.model_fields and k not in NOT_TUNABLE}
    valid = tunable_keys()
    for key, raw in overrides.items():
        head, _, rest = key.partition(".")
        if key not in valid:
            near = [k for k in valid if k.startswith(head + ".")] or valid
            raise BacktestError(f"--set {key}: not a detection or ranking setting; known: {', '.join(near)}")
        if rest:
            merged.setdefault(head, {})[rest] = raw
        else:
            merged[head] = raw
    try:
        Settings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise BacktestError(f"--set {loc}: {first.get('msg')}") from exc
    except (TypeError, ValueError) as exc:
        raise BacktestError(f"--set: {exc}") from exc
    return merged


# ---- reading an export ---------------------------------------------------------------------


@dataclass(slots=True)
class Export:
    path: Path
    manifest: dict[str, Any]

    def file(self, table: str) -> str:
        return str(self.path / self.manifest["files"][table])

    def query(self, sql: str) -> pa.Table:
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            return con.sql(sql).to_arrow_table()


def open_export(path: Path | str) -> Export:
    p = Path(path)
    mf = p / MANIFEST
    if not mf.exists():
        raise BacktestError(f"{p} is not an export directory (no {MANIFEST}); create one with rca export")
    manifest = json.loads(mf.read_text())
    if int(manifest.get("schema_version", 0)) > EXPORT_SCHEMA_VERSION:
        raise BacktestError(f"{p}: export schema {manifest.get('schema_version')} is newer than this release")
    for t in ("incidents", "suspects", "labels", "changes", "topology", "metrics", "logs"):
        if t not in manifest.get("files", {}) or not (p / manifest["files"][t]).exists():
            raise BacktestError(f"{p}: table {t} is missing from the export")
    return Export(p, manifest)


def _epoch(col: pa.ChunkedArray | pa.Array) -> list[float | None]:
    micros = pc.cast(col, pa.int64())
    return [None if v is None else v / 1e6 for v in micros.to_pylist()]


def _records(tbl: pa.Table, ts_cols: Sequence[str], json_cols: Sequence[str]) -> list[dict[str, Any]]:
    cols: dict[str, list[Any]] = {}
    for name in tbl.column_names:
        if name in ts_cols:
            cols[name] = _epoch(tbl.column(name))
        elif name in json_cols:
            cols[name] = [None if v is None else json.loads(v) for v in tbl.column(name).to_pylist()]
        else:
            cols[name] = tbl.column(name).to_pylist()
    n = tbl.num_rows
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def change_events(ex: Export) -> list[dict[str, Any]]:
    """The exported changes as contract events (``kind`` + the ingest fields), by time."""
    out = []
    rows = _records(ex.query(f"SELECT * FROM read_parquet('{ex.file('changes')}') ORDER BY ts, id"),
                    ["ts"], ["fields"])
    for r in rows:
        ev: dict[str, Any] = {"kind": r["kind"], "id": r["id"], "ts": r["ts"], **(r["fields"] or {})}
        if r["kind"] == "flag_change":
            ev["services"] = r["services"]
        else:
            ev["service"] = r["service"]
        for k in ("author", "description"):
            if r[k] is not None:
                ev[k] = r[k]
        out.append(ev)
    return out


def _seconds(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.float64) / 1e6


def _windows(*times: np.ndarray, chunk_s: float) -> Iterator[tuple[float, float]]:
    """Event-time chunks [lo, hi) of width ``chunk_s`` that hold at least one of the times."""
    every = np.concatenate([t for t in times if len(t)] or [np.empty(0)])
    if len(every) == 0:
        return
    origin = float(every.min())
    for k in np.unique(np.floor((every - origin) / chunk_s)):
        lo = origin + float(k) * chunk_s
        yield lo, lo + chunk_s


@dataclass(slots=True)
class ReplayCounts:
    metrics: int = 0
    logs: int = 0
    changes: int = 0
    edges: int = 0
    seconds: float = 0.0


def replay_export(ex: Export, client: httpx.Client, *, chunk_s: float = 600.0, batch: int = 5000,
                  log: Callable[[str], None] = lambda _m: None, timeout: float = 600.0) -> ReplayCounts:
    """POST the export's topology, changes, logs and metrics to the server in event-time order."""
    t0 = time.perf_counter()
    counts = ReplayCounts()
    edges = ex.query(f"SELECT source, target FROM read_parquet('{ex.file('topology')}')").to_pylist()
    if edges:
        post_edges(client, edges)
    counts.edges = len(edges)
    changes = change_events(ex)
    metrics = ex.query(f"SELECT service, metric, ts, value, labels FROM read_parquet('{ex.file('metrics')}') "
                       "ORDER BY ts, service, metric")
    logs = ex.query(f"SELECT service, ts, level, message, attributes FROM read_parquet('{ex.file('logs')}') "
                    "ORDER BY ts, service")
    m_ts = _seconds(metrics.column("ts"))
    l_ts = _seconds(logs.column("ts"))
    c_ts = np.array([float(c["ts"]) for c in changes], dtype=np.float64)
    windows = list(_windows(m_ts, l_ts, c_ts, chunk_s=chunk_s))
    for k, (lo, hi) in enumerate(windows):
        c_lo, c_hi = (int(x) for x in np.searchsorted(c_ts, [lo, hi]))
        post_changes(client, changes[c_lo:c_hi])
        counts.changes += c_hi - c_lo
        l_lo, l_hi = (int(x) for x in np.searchsorted(l_ts, [lo, hi]))
        if l_hi > l_lo:
            recs = _records(logs.slice(l_lo, l_hi - l_lo), ["ts"], ["attributes"])
            post_logs(client, [{k2: v for k2, v in r.items() if v is not None} for r in recs], batch=batch)
            counts.logs += l_hi - l_lo
        m_lo, m_hi = (int(x) for x in np.searchsorted(m_ts, [lo, hi]))
        if m_hi > m_lo:
            recs = _records(metrics.slice(m_lo, m_hi - m_lo), ["ts"], ["labels"])
            post_metrics(client, [{k2: v for k2, v in r.items() if v is not None} for r in recs], batch=batch)
            counts.metrics += m_hi - m_lo
        if k % 50 == 0 or k == len(windows) - 1:
            log(f"  replayed {iso(hi)}  ({counts.metrics:,} points, {counts.logs:,} logs, {counts.changes} changes)")
    wait_idle(client, timeout=timeout)
    counts.seconds = time.perf_counter() - t0
    return counts


# ---- runs -------------------------------------------------------------------------------------


def export_run(ex: Export) -> Run:
    incs = ex.query(f"SELECT id, started_at, services, title, status FROM read_parquet('{ex.file('incidents')}') "
                    "ORDER BY started_at, id")
    starts = _epoch(incs.column("started_at"))
    run = Run([RunIncident(r["id"], float(starts[i] or 0.0), tuple(r["services"] or ()), r["title"] or "",
                           r["status"] or "") for i, r in enumerate(incs.to_pylist())])
    sus = ex.query(f"SELECT incident_id, change_id FROM read_parquet('{ex.file('suspects')}') "
                   "ORDER BY incident_id, rank").to_pylist()
    for s in sus:
        run.ranked.setdefault(s["incident_id"], []).append(s["change_id"])
    return run


def export_causes(ex: Export) -> dict[str, str]:
    """Incident id -> the change labelled its cause (the latest such label wins)."""
    rows = ex.query(f"SELECT incident_id, change_id FROM read_parquet('{ex.file('labels')}') "
                    "WHERE verdict = 'cause' ORDER BY created_at, id").to_pylist()
    return {r["incident_id"]: r["change_id"] for r in rows}


def server_run(client: httpx.Client) -> Run:
    incs = client.get("/incidents", params={"limit": 10_000}).raise_for_status().json()
    run = Run([RunIncident(i["id"], parse_ts(i["started_at"]), tuple(i.get("services") or ()),
                           i.get("title") or "", i.get("status") or "") for i in incs])
    run.incidents.sort(key=lambda i: (i.started_at, i.id))
    for i in run.incidents:
        sus = client.get(f"/incidents/{i.id}/suspects").raise_for_status().json()
        run.ranked[i.id] = [s.get("change_id") for s in sorted(sus, key=lambda s: s.get("rank", 0))]
    return run


def _install_model(ex: Export, data_dir: Path) -> bool:
    model = ex.manifest.get("model")
    if not model:
        return False
    blob = (ex.path / model["file"]).read_bytes()
    from server.store.duckdb import DuckDBStore

    data_dir.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(data_dir / DB_FILE)
    try:
        store.save_model(version=int(model["version"]), blob=blob, info=dict(model.get("info") or {}))
    finally:
        store.close()
    return True


def replay_run(ex: Export, settings_kwargs: Mapping[str, Any], data_dir: Path, *, use_model: bool = True,
               log: Callable[[str], None] = lambda _m: None) -> tuple[Run, ReplayCounts]:
    """A fresh embedded server with these settings, fed the export; its incidents and suspects."""
    from server.detector.core import warm_up
    from server.embedded import EmbeddedServer

    warm_up()  # compile (or load) the detector kernel here, not inside the server's start timeout
    if use_model:
        _install_model(ex, data_dir)
    with EmbeddedServer(data_dir=data_dir, **settings_kwargs) as srv, \
            httpx.Client(base_url=srv.url, timeout=120) as client:
        counts = replay_export(ex, client, log=log)
        return server_run(client), counts


@dataclass(slots=True)
class Report:
    export: str
    overrides: dict[str, Any]
    baseline: str
    diff: Diff
    replay: ReplayCounts
    model: bool
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"export": self.export, "overrides": self.overrides, "baseline": self.baseline, "model": self.model,
                "seconds": round(self.seconds, 2), "replay": {
                    "metrics": self.replay.metrics, "logs": self.replay.logs, "changes": self.replay.changes,
                    "edges": self.replay.edges, "seconds": round(self.replay.seconds, 2)},
                "settings": self.settings, **self.diff.to_dict()}


def backtest(export_dir: Path | str, overrides: Mapping[str, Any], *, baseline: str = "export",
             use_model: bool = True, workdir: Path | None = None, tolerance_s: float = 900.0,
             log: Callable[[str], None] = lambda _m: None) -> Report:
    """Replay ``export_dir`` with ``overrides`` (``{"grouping.gap_seconds": 300}``) and diff
    against the export itself (``baseline="export"``) or against a replay with the
    export's own settings (``baseline="replay"``: both runs share replay effects, so the
    diff is the settings change alone)."""
    if baseline not in ("export", "replay"):
        raise BacktestError(f"baseline must be 'export' or 'replay', not {baseline!r}")
    t0 = time.perf_counter()
    ex = open_export(export_dir)
    base_settings = dict(ex.manifest.get("settings") or {})
    kwargs = apply_overrides(base_settings, overrides)
    causes = export_causes(ex)
    with tempfile.TemporaryDirectory(prefix="rca-backtest-", dir=workdir) as tmp:
        before = export_run(ex)
        if baseline == "replay":
            log("replaying with the export's own settings (baseline) ...")
            replayed, _ = replay_run(ex, apply_overrides(base_settings, {}), Path(tmp) / "baseline",
                                     use_model=use_model, log=log)
            causes = carry_causes(causes, compare(before, replayed, {}, tolerance_s=tolerance_s).matched)
            before = replayed
        log("replaying with " + (", ".join(f"{k}={v}" for k, v in overrides.items()) or "unchanged settings")
            + " ...")
        after, counts = replay_run(ex, kwargs, Path(tmp) / "changed", use_model=use_model, log=log)
    diff = compare(before, after, causes, tolerance_s=tolerance_s)
    return Report(str(export_dir), dict(overrides), baseline, diff, counts, use_model and bool(ex.manifest.get("model")),
                  time.perf_counter() - t0, kwargs)


def format_report(r: Report) -> str:
    d = r.diff
    lines = [f"backtest of {r.export} with " + (", ".join(f"{k}={v}" for k, v in r.overrides.items())
                                                 or "unchanged settings")
             + f" (baseline: {r.baseline}; ranking model: {'exported' if r.model else 'none, prior only'})",
             f"replayed {r.replay.metrics:,} points, {r.replay.logs:,} logs, {r.replay.changes:,} changes, "
             f"{r.replay.edges} edges in {r.replay.seconds:.1f} s",
             f"incidents: {d.incidents_before} before, {d.incidents_after} after; {len(d.matched)} matched, "
             f"{len(d.gained)} gained, {len(d.lost)} lost"]
    for tag, items in (("gained", d.gained), ("lost", d.lost)):
        for i in items:
            lines.append(f"  {tag:6s} {i.id:10s} {iso(i.started_at)}  {', '.join(i.services)}  {i.title}")
    lines.append(f"labelled causes: {d.labelled} (rank before -> after; '-' = not among the suspects or "
                 "incident lost)")
    for c in d.rank_changes:
        rb = "-" if c.rank_before is None else str(c.rank_before)
        ra = "-" if c.rank_after is None else str(c.rank_after)
        mark = "" if rb == ra else ("  better" if (c.rank_after or 10**9) < (c.rank_before or 10**9) else "  worse")
        lines.append(f"  {c.before_incident:10s} -> {c.after_incident or '(lost)':10s} {c.change_id:16s} "
                     f"{rb:>3s} -> {ra:<3s}{mark}")
    lines.append("  ".join(f"AC@{k} {d.ac_before[k]:.3f} -> {d.ac_after[k]:.3f}" for k in d.ac_before))
    return "\n".join(lines)
