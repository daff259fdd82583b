"""Protocol adapters (pure, no web framework): bodies of standard protocols -> the
server's tables and events. Arrow IPC (``arrow_ipc``), Prometheus remote-write
(``remote_write``, ``prom_scan``, ``prompb``), OTLP/HTTP (``otlp``), alerts (``alerts``)
and change webhooks (``webhooks``); errors in ``errors`` (the API maps them to 400, 401,
415 and 422). The JSON and NDJSON paths are in ``server.api.validation``."""
