"""Scenarios presented the way recordings of real systems come (pure).

Public recordings of microservice systems with injected faults (RCAEval-style: Online
Boutique, Sock Shop, Train Ticket) differ from the simulator's own output in ways the
ranker must survive:

* **no call graph** is posted (``edges`` empty);
* metrics are **named differently** and in other units: ``latency-90`` in seconds,
  ``mem`` in bytes, ``workload`` for throughput, ``container_cpu_usage_cores``,
  ``http.server.duration.p95``, ``CPUUtilization`` ... sometimes with the service name
  inside the metric name (``cartservice_cpu``);
* **error metrics are sparse** (a few services report them), datastores report no latency;
* often **no logs** at all.

:func:`as_recording` turns a scenario into such a recording (``style="real"``), or only
drops the call graph (``style="no-topology"``). The ground truth is unchanged.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from server.sim.scenario import Scenario

RECORDING_STYLES: tuple[str, ...] = ("sim", "no-topology", "real")

#: naming scheme -> simulator metric -> (recorded name, unit factor)
NAMING: dict[str, dict[str, tuple[str, float]]] = {
    "rcaeval": {"p95_latency_ms": ("latency-90", 0.001), "error_rate": ("error", 1.0), "qps": ("workload", 1.0),
                "cpu_usage": ("cpu", 1000.0), "memory_mb": ("mem", 1e6), "disk_usage_pct": ("disk", 1.0),
                "net_rx_kbps": ("net", 125.0)},
    "prometheus": {"p95_latency_ms": ("http_server_request_duration_seconds_p95", 0.001),
                   "error_rate": ("http_server_errors_ratio", 1.0),
                   "qps": ("http_server_requests_per_second", 1.0),
                   "cpu_usage": ("container_cpu_usage_cores", 1.0),
                   "memory_mb": ("container_memory_working_set_bytes", 1048576.0),
                   "disk_usage_pct": ("container_fs_usage_ratio", 0.01),
                   "net_rx_kbps": ("container_network_receive_bytes_per_second", 125.0)},
    "otel": {"p95_latency_ms": ("http.server.duration.p95", 1.0), "error_rate": ("http.server.error.ratio", 1.0),
             "qps": ("http.server.request.rate", 1.0), "cpu_usage": ("process.cpu.utilization", 1.0),
             "memory_mb": ("process.memory.usage", 1048576.0),
             "disk_usage_pct": ("system.filesystem.utilization", 0.01),
             "net_rx_kbps": ("system.network.io.receive", 125.0)},
    "cloudwatch": {"p95_latency_ms": ("LatencyP95", 1.0), "error_rate": ("ErrorRate", 1.0),
                   "qps": ("RequestCount", 10.0), "cpu_usage": ("CPUUtilization", 100.0),
                   "memory_mb": ("MemoryUtilization", 0.1), "disk_usage_pct": ("DiskSpaceUtilization", 1.0),
                   "net_rx_kbps": ("NetworkIn", 1250.0)},
}
#: services that behave like datastores in recordings (CPU and memory only, no latency)
DATASTORES: tuple[str, ...] = ("db-proxy",)


def as_recording(scenario: Scenario, style: str = "real") -> Scenario:
    """The scenario as a recording of ``style`` (see the module docstring): ``"sim"``
    unchanged, ``"no-topology"`` without edges, ``"real"`` also renamed, sparse and often
    without logs. Deterministic per seed."""
    if style not in RECORDING_STYLES:
        raise ValueError(f"unknown recording style {style!r}; known: {', '.join(RECORDING_STYLES)}")
    if style == "sim":
        return scenario
    if style == "no-topology":
        return replace(scenario, edges=[])
    rng = np.random.default_rng([int(scenario.seed) & 0xFFFFFFFF, zlib.crc32(b"recording")])
    scheme = str(rng.choice(sorted(NAMING)))
    names = NAMING[scheme]
    prefixed = scheme == "rcaeval" and bool(rng.random() < 0.5)  # "cartservice_cpu" columns
    services = sorted({str(p["service"]) for p in scenario.metrics})
    with_errors = {s for s in services if rng.random() < 0.4}
    datastores = {s for s in services if s in DATASTORES and rng.random() < 0.5}
    metrics: list[dict[str, Any]] = []
    for p in scenario.metrics:
        svc, m = str(p["service"]), str(p["metric"])
        if m == "error_rate" and svc not in with_errors:
            continue
        if svc in datastores and m in ("p95_latency_ms", "error_rate", "qps"):
            continue
        name, factor = names.get(m, (m, 1.0))
        q = dict(p)
        q["metric"] = f"{svc}_{name}" if prefixed else name
        q["value"] = round(float(p["value"]) * factor, 9)
        metrics.append(q)
    logs = scenario.logs if rng.random() < 0.5 else []
    return replace(scenario, edges=[], metrics=metrics, logs=logs)


INFRA_BY_SEED: tuple[str, ...] = ("cpu", "mem", "disk", "delay", "loss")


def root_scenario(seed: int, style: str = "sim") -> Scenario:
    """The infrastructure-fault scenario of ``seed`` as ``rca eval rca`` and the tuning
    tool build it: the fault kind cycles with the seed (cpu, mem, disk, delay, loss); one
    seed in three is a short, coarse recording (10.5 minutes of history at 60 s); then
    presented as a recording of ``style``."""
    from server.sim.scenario import generate_scenario

    kind = INFRA_BY_SEED[seed % len(INFRA_BY_SEED)]
    if seed % 3 == 0:
        sc = generate_scenario(seed, kind=kind, history_minutes=10.5, resolution_s=60.0)
    else:
        sc = generate_scenario(seed, kind=kind)
    return as_recording(sc, style)


__all__ = ["INFRA_BY_SEED", "NAMING", "RECORDING_STYLES", "as_recording", "root_scenario"]
