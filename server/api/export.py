"""``GET /export``: the incident history as a zip of Parquet files plus ``manifest.json``,
streamed in bounded memory (record batches from the store become Parquet row groups
written straight into a zip that is sent as it grows)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

import server
from server.api.deps import State, ts_param
from server.export.archive import ExportInfo, zip_stream
from server.export.tables import TABLES, ExportFilter

router = APIRouter(tags=["export"])


def export_settings(settings: Any) -> dict[str, Any]:
    """The settings groups that decide incidents and rankings (recorded in the manifest so
    a backtest starts from what the exporting server ran with)."""
    dumped = settings.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if k not in ("role", "host", "port", "data_dir", "log_level", "store", "bus", "api", "auth")}


@router.get(
    "/export",
    summary="Export incidents, anomalies, suspects, labels, changes, topology, metrics and logs as a zip of Parquet",
    response_class=StreamingResponse,
    responses={200: {
        "description": "A zip (streamed) with one Parquet file per table ("
                       + ", ".join(f"`{t}.parquet`" for t in TABLES)
                       + "), `manifest.json` (schema version, counts, time range, server version) and, when the "
                         "server has a trained ranking model, `model.bin`. See docs/export.md.",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }},
)
def export(
    state: State,
    since: Annotated[str | None, Query(description="ISO 8601 or epoch seconds; rows at or after (each table's own time)")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 or epoch seconds; rows at or before")] = None,
    service: Annotated[list[str] | None, Query(description="keep rows of these services (repeatable)")] = None,
) -> StreamingResponse:
    lo, hi = ts_param(since, "since"), ts_param(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise HTTPException(422, detail=[{"loc": ["query", "until"], "type": "value_error",
                                          "msg": "until is before since"}])
    filt = ExportFilter(since=lo, until=hi, services=tuple(s for s in (service or []) if s))
    info = ExportInfo(server_version=server.__version__, settings=export_settings(state.settings))
    name = time.strftime("rca-export-%Y%m%dT%H%M%SZ.zip", time.gmtime())
    return StreamingResponse(zip_stream(state.store, filt, info), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
