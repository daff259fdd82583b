"""Generators for infrastructure-fault and simultaneous-release scenarios (pure).

Called by :func:`server.sim.scenario.generate_scenario` for kinds ``cpu``, ``mem``,
``disk``, ``delay``, ``loss`` (no culprit change: ``Truth.culprit_id`` is None and
``Truth.fault_service`` is the root service) and ``releases`` (several rolling deploys
within 10 minutes, one faulty: ``Truth.culprit_id``; ``Truth.releases`` lists them all).
See :mod:`server.sim.faults` for what the faults do.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from server.sim import changes as ch
from server.sim.faults import (
    INFRA_KINDS,
    ResourceFault,
    downsample,
    infra_fault,
    infra_log_sources,
    make_rollout,
    pod_points,
    resource_metrics,
)
from server.sim.fleet import (
    STEP_S,
    Blip,
    Fault,
    affected_services,
    generate_metrics,
    make_fleet,
    metric_points,
)
from server.sim.logs import (
    LogSource,
    access_logs,
    background_logs,
    caller_sources,
    fault_templates,
    source_logs,
)

if TYPE_CHECKING:
    from server.sim.scenario import Scenario


def generate_rootcause_scenario(
    seed: int, *, kind: str, streams: list[np.random.Generator], org: str = "default", n_services: int = 10,
    history_minutes: float | None = None, post_onset_minutes: float = 25.0, resolution_s: float = STEP_S,
    benign_per_hour: float = 5.0, blips_per_hour: float = 2.0, magnitude: float = 1.0,
) -> Scenario:
    from server.sim.scenario import BASE_EPOCH, Scenario, Truth, _pick_fault_service

    r_fleet, r_time, r_metrics, r_logs, r_extra = streams
    fleet = make_fleet(r_fleet, n_services)
    versions = ch.VersionBook()
    pre_min = history_minutes if history_minutes is not None else float(r_time.uniform(20.0, 60.0))
    start = BASE_EPOCH + float(r_time.integers(0, 28)) * 86400.0 + float(r_time.integers(0, 24 * 360)) * STEP_S
    onset = start + round(pre_min * 60.0 / STEP_S) * STEP_S + float(r_time.uniform(0.0, STEP_S))
    end = onset + post_onset_minutes * 60.0
    n = int(round((end - start) / STEP_S))
    ts = start + STEP_S * np.arange(n)
    truth = Truth(kind=kind)
    changes: list[dict[str, Any]] = []
    faults: list[Fault] = []
    rfaults: list[ResourceFault] = []
    log_sources: list[LogSource] = []
    svc = _pick_fault_service(r_time, fleet)
    rollouts = []
    faulty_rollout = None
    if kind in INFRA_KINDS:
        fault, rf, flavour = infra_fault(r_time, kind, svc, onset, magnitude)
        faults.append(fault)
        rfaults.append(rf)
        log_sources += infra_log_sources(fleet, fault, kind)
        truth.fault_kind = flavour
    else:  # releases: 3-6 services roll out within 10 minutes, one of them faulty
        k = int(r_time.integers(3, 7))
        others = [s for s in fleet.names if s != svc]
        released = [svc, *[str(x) for x in r_time.choice(others, size=k - 1, replace=False)]]
        t0 = onset - float(r_time.uniform(60.0, 240.0))
        times = {s: t0 + float(r_time.uniform(-420.0, 180.0)) for s in released}
        times[svc] = t0
        fkind = str(r_time.choice(["latency", "errors", "both"], p=[0.5, 0.3, 0.2]))
        lat = 1.0 + magnitude * float(r_time.uniform(0.8, 2.5)) if fkind != "errors" else 1.0
        err = magnitude * float(r_time.uniform(0.03, 0.12)) if fkind != "latency" else 0.0
        for s in sorted(released, key=lambda x: times[x]):
            dep = ch.make_deployment(r_time, fleet, versions, s, times[s])
            changes.append(dep)
            ro = make_rollout(r_time, dep)
            rollouts.append(ro)
            truth.releases.append(dep["id"])
            if s == svc:
                faulty_rollout = ro
                truth.culprit_id = dep["id"]
                truth.culprit_kind = "deployment"
                truth.culprit_service = svc
                # the service-level fault follows the share of new pods
                fault = Fault(svc, ro.switch[0], latency_factor=lat, error_add=err,
                              ramp_s=ro.switch[-1] - ro.switch[0] + STEP_S)
                faults.append(fault)
                mention = bool(r_time.random() < 0.5)
                tpl = fault_templates(r_logs, fleet, dep, svc, fkind, mention)
                log_sources.append(LogSource(svc, tpl, rate=float(r_time.uniform(1.0, 3.0)), fault=fault))
                log_sources += caller_sources(fleet, fault, fkind)
                truth.logs_mention_culprit = mention
        truth.fault_kind = fkind
    fault = faults[0]
    truth.fault_service = svc
    truth.onset = fault.start
    truth.latency_factor = fault.latency_factor
    truth.error_add = fault.error_add

    # ---- decoys near the onset and benign background changes ----------------------------------
    callers = fleet.callers(svc)
    decoys: list[tuple[str, float]] = []
    if callers and r_time.random() < 0.7:
        decoys.append((str(r_time.choice(callers)), onset - float(r_time.uniform(30.0, 600.0))))
    if r_time.random() < 0.7:
        decoys.append((str(r_time.choice(fleet.names)), onset - float(r_time.uniform(-60.0, 300.0))))
    for s_d, t_d in decoys:
        if start + 30.0 <= t_d < end:
            c = ch.random_benign_change(r_time, fleet, versions, s_d, t_d)
            changes.append(c)
            truth.decoy_ids.append(c["id"])
    hours = (end - start) / 3600.0
    for t_b in np.sort(r_time.uniform(start + 60.0, end, int(r_time.poisson(benign_per_hour * hours)))):
        changes.append(ch.random_benign_change(r_time, fleet, versions, str(r_time.choice(fleet.names)), float(t_b)))
    blips: list[Blip] = []
    for _ in range(int(r_time.poisson(blips_per_hour * hours))):
        t_b = start + STEP_S * float(r_time.integers(10, max(11, n - 1)))
        if abs(t_b - onset) < 300.0:
            continue
        blips.append(Blip(str(r_time.choice(fleet.names)), "p95_latency_ms", t_b, float(r_time.uniform(2.5, 5.0))))
    truth.blips = [{"service": b.service, "metric": b.metric, "ts": b.ts} for b in blips]
    renamed = versions_in_time_order(changes, rollouts)
    for src in log_sources:  # lines that name a version name the renumbered one
        src.templates = [(lvl, _rename_versions(txt, renamed)) for lvl, txt in src.templates]

    # ---- series and logs ---------------------------------------------------------------------
    state = r_metrics.bit_generator.state
    series = generate_metrics(fleet, ts, r_metrics, faults, blips)
    if rollouts:
        healthy_rng = np.random.default_rng()
        healthy_rng.bit_generator.state = state
        healthy = generate_metrics(fleet, ts, healthy_rng, [f for f in faults if f.service != svc], blips)
    series.values.update(resource_metrics(fleet, series, r_extra, rfaults))
    # noisy neighbours, as real fleets have: batch jobs, GC storms, cache refills on other
    # services, some of them while the fault is on (they fool a max-z ranking)
    for _ in range(int(r_extra.integers(1, 4))):
        s_n = str(r_extra.choice([x for x in fleet.names if x != svc]))
        m_n = str(r_extra.choice(["cpu_usage", "memory_mb", "p95_latency_ms", "net_rx_kbps"]))
        t_n = onset + float(r_extra.uniform(-1200.0, 900.0))
        burst = (ts >= t_n) & (ts < t_n + float(r_extra.uniform(120.0, 480.0)))
        series.values[(s_n, m_n)] = np.round(series.values[(s_n, m_n)] * np.where(
            burst, float(r_extra.uniform(1.5, 3.0)), 1.0), 4)
    truth.affected_services = [svc] + [x for x in affected_services(fleet, series, fault.start, fault.end) if x != svc]
    points = metric_points(series)
    for ro in rollouts:
        points += pod_points(r_extra, series, healthy, ro, faulty=ro is faulty_rollout)
    points.sort(key=lambda p: (p["ts"], p["service"], p["metric"]))
    points = downsample(points, resolution_s)
    logs = access_logs(r_logs, fleet, series, 2)
    logs += background_logs(r_logs, fleet, series)
    logs += source_logs(r_logs, series, log_sources)
    logs = sorted((lg for lg in logs if start <= lg["ts"] < end), key=lambda lg: lg["ts"])
    changes = sorted((c for c in changes if start <= c["ts"] < end), key=lambda c: c["ts"])
    return Scenario(seed=int(seed), kind=kind, org=org, start=start, end=end, edges=fleet.edge_dicts(),
                    metrics=points, logs=logs, changes=changes, truth=truth, step=max(resolution_s, STEP_S))


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.lstrip("v").split("."))


def versions_in_time_order(changes: list[dict[str, Any]], rollouts: list[Any]) -> dict[str, str]:
    """Deployments of one service get their versions in time order (changes are generated
    culprit first, background later, so a later-generated earlier deploy could otherwise
    carry a newer version than the release after it); rollouts follow their change.
    Returns ``"<service> <old version>" -> "<service> <new version>"`` for the versions that moved."""
    renamed: dict[str, str] = {}
    by_svc: dict[str, list[dict[str, Any]]] = {}
    for c in changes:
        if c["kind"] == "deployment":
            by_svc.setdefault(str(c["service"]), []).append(c)
    for deps in by_svc.values():
        chain = sorted({str(v) for c in deps for v in (c["previous_version"], c["version"])}, key=_semver)
        if len(chain) != len(deps) + 1:
            continue  # not a simple chain of bumps (e.g. a rollback): leave it
        for i, c in enumerate(sorted(deps, key=lambda c: (float(c["ts"]), str(c["id"])))):
            if c["version"] != chain[i + 1]:
                renamed[f"{c['service']} {c['version']}"] = f"{c['service']} {chain[i + 1]}"
            c["previous_version"], c["version"] = chain[i], chain[i + 1]
    by_id = {str(c["id"]): c for c in changes}
    for ro in rollouts:
        dep = by_id.get(ro.change_id)
        if dep is not None:
            ro.old, ro.new = str(dep["previous_version"]), str(dep["version"])
    return renamed


def _rename_versions(text: str, renamed: dict[str, str]) -> str:
    if not renamed:
        return text
    pat = re.compile("|".join(re.escape(k) + r"(?![0-9.])" for k in sorted(renamed, key=len, reverse=True)))
    return pat.sub(lambda m: renamed[m.group(0)], text)

