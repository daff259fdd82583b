"""The real OpenTelemetry Python SDK exporting metrics and logs over OTLP/HTTP (protobuf)
to ``/v1/metrics`` and ``/v1/logs``."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from server.embedded import EmbeddedServer
from tests.api.helpers import wait_idle


# the SDK's stdlib LoggingHandler still works; its move to an instrumentation package is not our concern
@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated")
def test_otel_sdk_exports_metrics_and_logs(server: EmbeddedServer, http: httpx.Client) -> None:
    resource = Resource.create({"service.name": "checkout", "service.instance.id": "pod-7"})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics", timeout=10),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("checkout.http")
    requests = meter.create_counter("http.server.requests", unit="1")
    duration = meter.create_histogram("http.server.duration", unit="ms")
    inflight = meter.create_up_down_counter("http.server.active_requests")
    for i in range(100):
        attrs = {"http.route": "/pay", "http.status_code": 200 if i % 10 else 500}
        requests.add(1, attrs)
        duration.record(20.0 + i, {"http.route": "/pay"})
    inflight.add(3)
    provider.force_flush()
    provider.shutdown()

    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.url}/v1/logs", timeout=10)))
    logger = logging.getLogger("checkout.test_otel")
    logger.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=logs)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.error("upstream timeout calling payments after %d ms", 2000, extra={"order_id": "o-17"})
        logger.warning("retrying payment")
        logger.info("payment ok")
        logs.force_flush()
    finally:
        logger.removeHandler(handler)
        logs.shutdown()

    wait_idle(http)
    rows = {r["metric"]: r for r in http.get("/services/metrics", params={"service": "checkout"}).json()}
    assert {"http.server.requests", "http.server.duration", "http.server.duration_count",
            "http.server.duration_sum", "http.server.active_requests"} <= set(rows)
    store: Any = server.app.state.rca.store
    counts = dict(store._q("SELECT labels, value FROM metrics WHERE metric = 'http.server.requests'"))
    assert counts == {'{"http.route":"/pay","http.status_code":"200","service.instance.id":"pod-7"}': 90.0,
                      '{"http.route":"/pay","http.status_code":"500","service.instance.id":"pod-7"}': 10.0}
    (total,) = store._q("SELECT value FROM metrics WHERE metric = 'http.server.duration_count'")[0]
    assert total == 100.0
    p50 = store._q("SELECT value FROM metrics WHERE metric = 'http.server.duration' "
                   "AND labels LIKE '%\"quantile\":\"0.5\"%'")
    assert p50 and 25.0 <= p50[0][0] <= 100.0  # default buckets: 25, 50, 75, 100 ...
    got = store._q("SELECT level, message, attributes FROM logs WHERE service = 'checkout' ORDER BY level_rank DESC")
    assert [(r[0], r[1]) for r in got] == [("ERROR", "upstream timeout calling payments after 2000 ms"),
                                          ("WARN", "retrying payment"), ("INFO", "payment ok")]
    assert '"order_id":"o-17"' in got[0][2]
