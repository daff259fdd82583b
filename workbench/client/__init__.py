"""Typed httpx client over the server's HTTP contract, used by every front end and notebook.

    from workbench.client import RcaClient
    with RcaClient("http://127.0.0.1:8000") as rca:
        for inc in rca.incidents(status="OPEN"):
            print(inc.id, inc.title, rca.suspects(inc.id)[:1])
"""

from workbench.client.client import DEFAULT_URL, AsyncRcaClient, RcaClient
from workbench.client.errors import (
    ClientError,
    NotFound,
    ProtocolError,
    RequestRejected,
    ServerError,
    ServerTimeout,
    ServerUnavailable,
    ValidationFailed,
)
from workbench.client.export import ExportError, download_export, load_duckdb, load_polars, read_manifest
from workbench.client.models import (
    Anomaly,
    Change,
    ChangeIncident,
    Health,
    Incident,
    Label,
    LogPattern,
    LogPatterns,
    ModelVersion,
    Series,
    SeriesInfo,
    SeriesPoint,
    Service,
    Suspect,
    SuspectRef,
    parse_dt,
)

__all__ = [
    "DEFAULT_URL", "AsyncRcaClient", "RcaClient",
    "ClientError", "NotFound", "ProtocolError", "RequestRejected", "ServerError", "ServerTimeout",
    "ServerUnavailable", "ValidationFailed",
    "Anomaly", "Change", "ChangeIncident", "Health", "Incident", "Label", "LogPattern", "LogPatterns",
    "ModelVersion", "Series", "SeriesInfo", "SeriesPoint", "Service",
    "Suspect", "SuspectRef", "parse_dt",
    "ExportError", "download_export", "load_duckdb", "load_polars", "read_manifest",
]
