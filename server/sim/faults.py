"""Scenarios with no culprit change, with rolling deploys, and with several releases (pure).

* Infrastructure faults on one service with no change event behind them (kinds ``cpu``,
  ``mem``, ``disk``, ``delay``, ``loss``): a CPU hog, a memory leak, a filling disk,
  network delay or packet loss. Every service reports resource metrics beside latency,
  errors and traffic: ``cpu_usage`` (cores), ``memory_mb``, ``disk_usage_pct`` and
  ``net_rx_kbps``. The fault shows in the resource metric it concerns (none for delay),
  in the service's own latency/errors, and propagates to its callers as usual; callers
  log timeouts or connection resets naming the service; the service logs its own errors.
* ``releases``: 3 to 6 services release within 10 minutes by rolling deploys (pods
  replaced one by one); exactly one release is faulty. Released services report
  per-pod series labelled ``{"pod": ..., "version": ...}`` beside their service-level
  series: the faulty release's new pods degrade while its old pods stay healthy.

Both kinds keep the usual background (benign changes, decoys near the onset, blips), and
can start shortly before the fault (``history_minutes``) and be reported at a coarser
resolution (``resolution_s``, e.g. 60 s: points averaged into buckets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from server.sim import changes as ch
from server.sim.fleet import STEP_S, Fault, Fleet, FleetSeries
from server.sim.logs import LogSource, Template

INFRA_KINDS: tuple[str, ...] = ("cpu", "mem", "disk", "delay", "loss")
RESOURCE_METRICS: tuple[str, ...] = ("cpu_usage", "memory_mb", "disk_usage_pct", "net_rx_kbps")


@dataclass(slots=True)
class ResourceFault:
    """What an infrastructure fault does to one service's resources."""

    service: str
    start: float
    ramp_s: float
    cpu_add: float = 0.0  # cores
    mem_growth: float = 0.0  # relative growth of memory at full intensity
    disk_to: float | None = None  # disk usage reached at full intensity (%)

    def intensity(self, ts: np.ndarray) -> np.ndarray:
        return Fault(self.service, self.start, ramp_s=self.ramp_s).intensity(ts)


def resource_metrics(fleet: Fleet, series: FleetSeries, rng: np.random.Generator,
                     faults: list[ResourceFault]) -> dict[tuple[str, str], np.ndarray]:
    """Resource series per service: CPU follows traffic, memory and disk wander slowly."""
    t = series.ts
    n = len(t)
    out: dict[tuple[str, str], np.ndarray] = {}
    for s in fleet.names:
        qps = series.values[(s, "qps")]
        rel = qps / max(float(np.mean(qps)), 1e-9)
        cpu = float(rng.uniform(0.2, 0.9)) * rel ** 0.8 * np.exp(rng.normal(0.0, 0.06, n))
        mem0 = float(rng.uniform(200.0, 1500.0))
        mem = mem0 * (1.0 + 0.01 * np.cumsum(rng.normal(0.0, 0.05, n)) / np.sqrt(max(n, 1))) \
            * np.exp(rng.normal(0.0, 0.005, n))
        disk = float(rng.uniform(30.0, 70.0)) + np.linspace(0.0, 0.3, n) + rng.normal(0.0, 0.05, n)
        net = qps * float(rng.uniform(2.0, 10.0)) * np.exp(rng.normal(0.0, 0.05, n))
        for f in faults:
            if f.service != s:
                continue
            x = f.intensity(t)
            cpu = cpu + f.cpu_add * x * np.exp(rng.normal(0.0, 0.04, n))
            mem = mem * (1.0 + f.mem_growth * x)
            if f.disk_to is not None:
                disk = disk + (f.disk_to - disk) * x
        out[(s, "cpu_usage")] = np.round(np.maximum(cpu, 0.0), 4)
        out[(s, "memory_mb")] = np.round(mem, 1)
        out[(s, "disk_usage_pct")] = np.round(np.clip(disk, 0.0, 100.0), 2)
        out[(s, "net_rx_kbps")] = np.round(net, 1)
    return out


def infra_fault(rng: np.random.Generator, kind: str, service: str, start: float,
                magnitude: float = 1.0) -> tuple[Fault, ResourceFault, str]:
    """The latency/error part, the resource part and the log flavour of an infra fault."""
    m = magnitude
    if kind == "cpu":
        ramp = float(rng.uniform(0.0, 60.0))
        return (Fault(service, start, latency_factor=1.0 + m * float(rng.uniform(0.2, 1.0)), ramp_s=ramp),
                ResourceFault(service, start, ramp, cpu_add=m * float(rng.uniform(0.4, 2.0))), "latency")
    if kind == "mem":
        ramp = float(rng.uniform(300.0, 900.0))
        return (Fault(service, start, latency_factor=1.0 + m * float(rng.uniform(0.2, 0.8)), ramp_s=ramp),
                ResourceFault(service, start, ramp, mem_growth=m * float(rng.uniform(0.6, 2.0))), "latency")
    if kind == "disk":
        ramp = float(rng.uniform(60.0, 300.0))
        return (Fault(service, start, latency_factor=1.0 + m * 0.1, error_add=m * float(rng.uniform(0.03, 0.12)),
                      ramp_s=ramp),
                ResourceFault(service, start, ramp, disk_to=float(rng.uniform(97.0, 100.0))), "errors")
    if kind == "delay":
        return (Fault(service, start, latency_factor=1.0 + m * float(rng.uniform(0.4, 2.0))),
                ResourceFault(service, start, 0.0), "latency")
    if kind == "loss":
        return (Fault(service, start, latency_factor=1.0 + m * float(rng.uniform(0.2, 0.6)),
                      error_add=m * float(rng.uniform(0.03, 0.12))),
                ResourceFault(service, start, 0.0), "both")
    raise ValueError(f"unknown infrastructure fault {kind!r}; known: {', '.join(INFRA_KINDS)}")


_OWN_TEMPLATES: dict[str, list[Template]] = {
    "cpu": [("WARN", "worker pool saturated: request {hex} queued {ms} ms")],
    "mem": [("WARN", "GC pause {ms} ms, heap {n} MB in use"), ("ERROR", "allocation failed: out of memory in worker {n}")],
    "disk": [("ERROR", "OSError: [Errno 28] No space left on device: '/var/data/{word}'"),
             ("ERROR", "failed to write segment {hex}: disk full")],
    "delay": [],
    "loss": [("WARN", "retransmitting request {hex} after {ms} ms")],
}


def infra_log_sources(fleet: Fleet, fault: Fault, kind: str) -> list[LogSource]:
    """The faulty service's own complaints, and its callers' errors naming it."""
    out: list[LogSource] = []
    if _OWN_TEMPLATES[kind]:
        out.append(LogSource(fault.service, _OWN_TEMPLATES[kind], rate=1.5, fault=fault))
    for e in fleet.edges:
        if e.target != fault.service:
            continue
        if kind == "loss":
            tpls: list[Template] = [("ERROR", f"connection reset by peer while calling {fault.service}"),
                                    ("ERROR", f"call to {fault.service} failed: EOF after {{ms}} ms")]
        elif kind == "disk":
            tpls = [("ERROR", f"call to {fault.service} failed: 500 Internal Server Error")]
        else:
            tpls = [("ERROR", f"upstream timeout calling {fault.service} after {{ms}} ms")]
        out.append(LogSource(e.source, tpls, rate=1.5 * e.error_weight, fault=fault))
    return out


# ---- rolling deploys with per-pod series --------------------------------------------------


@dataclass(slots=True)
class Rollout:
    """A rolling deploy: pod ``i`` switches from ``old`` to ``new`` at ``switch[i]``."""

    service: str
    change_id: str
    old: str
    new: str
    pods: list[str]
    switch: list[float]

    def new_share(self, ts: np.ndarray) -> np.ndarray:
        return np.mean([(ts >= s).astype(np.float64) for s in self.switch], axis=0)


def make_rollout(rng: np.random.Generator, change: dict[str, Any]) -> Rollout:
    n = int(rng.integers(3, 5))
    gap = float(rng.uniform(40.0, 120.0))
    switch = [float(change["ts"]) + 15.0 + i * gap for i in range(n)]
    old_pods = [f"{change['service']}-{ch.hex_id(rng, 5)}" for _ in range(n)]
    return Rollout(change["service"], change["id"], str(change["previous_version"]), str(change["version"]),
                   old_pods, switch)


def pod_points(rng: np.random.Generator, series: FleetSeries, healthy: FleetSeries, rollout: Rollout,
               faulty: bool, metrics: tuple[str, ...] = ("p95_latency_ms", "error_rate")) -> list[dict[str, Any]]:
    """Per-pod points of a rolling deploy. Old pods run the healthy system; new pods of a
    faulty release carry the fault (the service-level series averages them)."""
    t = series.ts
    out: list[dict[str, Any]] = []
    svc = rollout.service
    for i, (pod, sw) in enumerate(zip(rollout.pods, rollout.switch, strict=True)):
        new_pod = f"{svc}-{ch.hex_id(rng, 5)}"
        for metric in metrics:
            base = healthy.values[(svc, metric)]
            bad = series.values[(svc, metric)]
            noise = rng.normal(0.0, 0.08, len(t))
            share = np.maximum(rollout.new_share(t), 1e-9)
            if metric == "error_rate":
                v_old = np.clip(base + 0.3 * base * noise, 0.0, 1.0)
                # the service-level excess comes from the new pods only
                v_new = np.clip(base + (bad - base) / share + 0.3 * base * noise, 0.0, 1.0) if faulty else v_old
            else:
                v_old = base * np.exp(noise)
                v_new = (base + (bad - base) / share) * np.exp(noise) if faulty else v_old * np.exp(
                    float(rng.normal(0.0, 0.02)))
            digits = 5 if metric == "error_rate" else 1
            for k in range(len(t)):
                if t[k] < sw:
                    out.append({"service": svc, "metric": metric, "ts": float(t[k]),
                                "value": round(float(v_old[k]), digits), "labels": {"pod": pod, "version": rollout.old}})
                else:
                    out.append({"service": svc, "metric": metric, "ts": float(t[k]),
                                "value": round(float(v_new[k]), digits),
                                "labels": {"pod": new_pod, "version": rollout.new}})
        del i
    return out


def downsample(points: list[dict[str, Any]], resolution_s: float) -> list[dict[str, Any]]:
    """Average points of each series into ``resolution_s`` buckets (stamped at the bucket start)."""
    if resolution_s <= STEP_S:
        return points
    acc: dict[tuple[str, str, str, float], list[float]] = {}
    labels_of: dict[str, dict[str, str]] = {}
    for p in points:
        lab = p.get("labels")
        key_l = "" if not lab else ",".join(f"{k}={v}" for k, v in sorted(lab.items()))
        if lab:
            labels_of[key_l] = lab
        b = float(np.floor(float(p["ts"]) / resolution_s) * resolution_s)
        acc.setdefault((str(p["service"]), str(p["metric"]), key_l, b), []).append(float(p["value"]))
    out: list[dict[str, Any]] = []
    for (svc, metric, key_l, b), vals in sorted(acc.items(), key=lambda kv: (kv[0][3], kv[0][0], kv[0][1], kv[0][2])):
        d: dict[str, Any] = {"service": svc, "metric": metric, "ts": b, "value": round(float(np.mean(vals)), 5)}
        if key_l:
            d["labels"] = labels_of[key_l]
        out.append(d)
    return out


__all__ = ["INFRA_KINDS", "RESOURCE_METRICS", "ResourceFault", "Rollout", "downsample", "infra_fault",
           "infra_log_sources", "make_rollout", "pod_points", "resource_metrics"]
