"""Root-service and simultaneous-release evaluation for ``rca eval rca`` (over HTTP).

* Root services: infrastructure-fault scenarios (CPU hog, memory leak, disk full, network
  delay, packet loss; no culprit change) replayed into a fresh embedded server; the rank
  of the faulty service among the incident's ``kind: "service"`` suspects gives AC@1,
  AC@3 and Avg@5 (the mean of AC@1..AC@5). Beside them, in the same run and on the same
  data: **random** order (its expected AC@k = k / number of services) and **NSigma** (each
  service scored by the largest |x - mean| / std of any of its metrics after the
  incident's start, against the hour before it). One scenario in three is a short,
  coarse recording: it starts about 10 minutes before the fault and is reported at 60-s
  resolution (10 baseline points).
* Alert-only: the same scenarios' RCA when the incident is opened by an external alert on
  the entry service a few minutes after the fault, with no anomaly at all (the engine on
  the scenario's data, as a receiver-opened incident would be analysed).
* Simultaneous releases: 3-6 services release by rolling deploys within 10 minutes, one
  of them faulty; HR@1 / HR@3 of the faulty release among change suspects, beside the
  time-proximity baseline (the latest change before the incident's start first).

The server never sees the ground truth; baselines use only the data it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

INFRA = ("cpu", "mem", "disk", "delay", "loss")
DEFAULT_ROOT_SEEDS = "80000-80059"
DEFAULT_RELEASE_SEEDS = "81000-81029"


def root_kind(seed: int) -> str:
    return INFRA[seed % len(INFRA)]


def short_history(seed: int) -> bool:
    return seed % 3 == 0


def make_root_scenario(seed: int, style: str = "sim") -> Any:
    """The infrastructure-fault scenario of ``seed`` as a recording of ``style``
    (``sim``, ``no-topology``: no call graph posted, ``real``: no call graph, metrics
    named and scaled as real recordings name them, sparse error metrics, often no logs;
    see :mod:`server.sim.recording`)."""
    from server.sim.recording import root_scenario

    return root_scenario(seed, style)


def _series_of(scenario: Any) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    acc: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for p in scenario.metrics:
        t, v = acc.setdefault((p["service"], p["metric"]), ([], []))
        t.append(float(p["ts"]))
        v.append(float(p["value"]))
    return {k: (np.array(t), np.array(v)) for k, (t, v) in acc.items()}


def nsigma_order(scenario: Any, start: float) -> list[str]:
    from server.rca.deviation import nsigma

    best: dict[str, float] = {}
    for (svc, _), (t, v) in _series_of(scenario).items():
        z = nsigma(t, v, start)
        if z is not None and np.isfinite(z):
            best[svc] = max(best.get(svc, 0.0), z)
    return sorted(best, key=lambda s: (-best[s], s))


def ac_metrics(ranks: list[int | None], n_candidates: list[int] | None = None) -> dict[str, float]:
    """AC@1, AC@3, Avg@5 from ranks (None = missing); with ``n_candidates`` the expected
    values of a random order instead."""
    n = len(ranks)
    if n == 0:
        return {"n": 0, "ac1": 0.0, "ac3": 0.0, "avg5": 0.0}

    def ac(k: int) -> float:
        if n_candidates is not None:
            return sum(min(k, m) / m for m in n_candidates if m) / n
        return sum(1 for r in ranks if r is not None and r <= k) / n

    return {"n": n, "ac1": round(ac(1), 4), "ac3": round(ac(3), 4),
            "avg5": round(sum(ac(k) for k in range(1, 6)) / 5, 4)}


def _fmt(m: dict[str, float]) -> str:
    return f"AC@1 {m['ac1']:.3f}  AC@3 {m['ac3']:.3f}  Avg@5 {m['avg5']:.3f}  (n={int(m['n'])})"


def _service_rank(suspects: list[dict[str, Any]], service: str | None) -> int | None:
    svc = [s for s in suspects if s.get("kind") == "service"]
    for i, s in enumerate(svc, start=1):
        if s.get("service") == service:
            return i
    return None


def _change_rank(suspects: list[dict[str, Any]], change_id: str | None) -> int | None:
    ch = [s for s in suspects if s.get("change_id")]
    for i, s in enumerate(ch, start=1):
        if s.get("change_id") == change_id:
            return i
    return None


def _replay_and_read(scenario: Any, data_dir: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    import httpx

    from server.embedded import EmbeddedServer
    from server.eval.rca_cli import _primary
    from server.sim.replay import get_suspects, replay

    with EmbeddedServer(data_dir=data_dir) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        replay(scenario, c)
        _, inc = _primary(c, scenario, before_s=1200.0)
        return inc, (get_suspects(c, inc["id"]) if inc is not None else [])


def alert_only_context(scenario: Any, *, delay_s: float = 180.0) -> Any:
    """The engine's input when an alert on the entry service, ``delay_s`` after the fault,
    opens the incident and nothing else is known (no anomaly): what a receiver-opened
    incident is analysed from."""
    from server.api.validation import validate_changes
    from server.model import Change, Edge, Incident, LogWindow
    from server.rca.engine import RcaContext

    t = scenario.truth
    callers = {e["source"] for e in scenario.edges}
    callees = {e["target"] for e in scenario.edges}
    entry = sorted(callers - callees)[0] if callers - callees else _entry_by_traffic(scenario)
    start = float(t.onset or 0.0) + delay_s
    inc = Incident(id="alert-1", status="OPEN", title="alert", started_at=start, detected_at=start,
                   services=[entry], severity=0.5, anomaly_count=0)
    logs = scenario.logs
    changes: list[Change] = []
    for c in scenario.changes:
        body = {k: v for k, v in c.items() if k != "kind"}
        changes += [ch for ch, _ in validate_changes([body], c["kind"], "changes")]
    return RcaContext(incident=inc, anomalies=[], changes=changes,
                      edges=[Edge(e["source"], e["target"]) for e in scenario.edges],
                      series={k: v for k, v in _series_of(scenario).items()},
                      logs=LogWindow(service=[lg["service"] for lg in logs], ts=[lg["ts"] for lg in logs],
                                     level=[lg["level"] for lg in logs], message=[lg["message"] for lg in logs]),
                      watermark=start + 900.0)


def _entry_by_traffic(scenario: Any) -> str:
    """Without a topology: the service with the most traffic (the front door)."""
    from server.rca.deviation import metric_class

    tot: dict[str, float] = {}
    for p in scenario.metrics:
        if metric_class(p["metric"]) == "traffic":
            tot[p["service"]] = tot.get(p["service"], 0.0) + float(p["value"])
    return max(sorted(tot), key=lambda s: tot[s]) if tot else str(scenario.truth.fault_service)


def alert_only_rank(scenario: Any, *, delay_s: float = 180.0) -> int | None:
    """Rank of the root service when an alert on the entry service, ``delay_s`` after the
    fault, opens the incident and nothing else is known (no anomaly)."""
    from server.rca.engine import analyse

    res = analyse(alert_only_context(scenario, delay_s=delay_s))
    for s in res.services:
        if s.service == scenario.truth.fault_service:
            return s.rank
    return None


def root_services(seeds: list[int], workdir: Path, log: Callable[[str], None], style: str = "sim") -> dict[str, Any]:
    """Root-service figures on ``seeds`` for recordings of ``style``; the alert-only
    incidents are opened 3 minutes after the fault (at the injection time for ``real``,
    as public recordings give it)."""
    ours: list[int | None] = []
    ns: list[int | None] = []
    cands: list[int] = []
    alert: list[int | None] = []
    change_shown = 0
    ns_all: list[int | None] = []
    groups: dict[str, list[int | None]] = {}
    detected = 0
    for seed in seeds:
        t0 = time.perf_counter()
        sc = make_root_scenario(seed, style)
        inc, sus = _replay_and_read(sc, workdir / f"root-{style}-{seed}")
        n_svc = len({p["service"] for p in sc.metrics})
        r = _service_rank(sus, sc.truth.fault_service) if inc is not None else None
        detected += int(inc is not None)
        start = float(sc.truth.onset or 0.0) if inc is None else _iso_ts(inc["started_at"])
        order = nsigma_order(sc, start)
        rn = order.index(sc.truth.fault_service) + 1 if sc.truth.fault_service in order else None
        ra = alert_only_rank(sc, delay_s=0.0 if style == "real" else 180.0)
        alert.append(ra)
        ns_all.append(rn)
        key = f"{sc.kind}{' short' if short_history(seed) else ''}"
        if short_history(seed):
            groups.setdefault("short, alert-only", []).append(ra)
        if inc is not None:  # detector-opened incidents
            top = inc.get("top_suspect") or {}
            change_shown += int(bool(top.get("change_id")))
            ours.append(r)
            ns.append(rn)
            cands.append(n_svc)
            groups.setdefault(sc.kind, []).append(r)
        log(f"  seed {seed} {key:10s} root={sc.truth.fault_service:15s} detected={inc is not None!s:5s} "
            f"rank={r} nsigma={rn} alert-only={ra} {time.perf_counter() - t0:.1f}s")
    return {"style": style, "seeds": [seeds[0], seeds[-1]], "scenarios": len(seeds), "detected": detected,
            "ours": ac_metrics(ours), "nsigma": ac_metrics(ns), "random": ac_metrics(ours, cands),
            "alert_only": ac_metrics(alert), "nsigma_all": ac_metrics(ns_all), "change_shown": change_shown,
            "by_kind": {k: ac_metrics(v) for k, v in sorted(groups.items())}}


def _iso_ts(s: str) -> float:
    from server.timeutil import parse_ts

    return float(parse_ts(s))


def time_proximity_rank(scenario: Any, start: float, culprit: str | None) -> int | None:
    before = [c for c in scenario.changes if float(c["ts"]) <= start + 240.0 and float(c["ts"]) >= start - 7200.0]
    before.sort(key=lambda c: -float(c["ts"]))
    for i, c in enumerate(before, start=1):
        if c["id"] == culprit:
            return i
    return None


def releases(seeds: list[int], workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from server.sim.scenario import generate_scenario

    ours: list[int | None] = []
    tp: list[int | None] = []
    for seed in seeds:
        t0 = time.perf_counter()
        sc = generate_scenario(seed, kind="releases")
        inc, sus = _replay_and_read(sc, workdir / f"rel-{seed}")
        r = _change_rank(sus, sc.truth.culprit_id) if inc is not None else None
        start = float(sc.truth.onset or 0.0) if inc is None else _iso_ts(inc["started_at"])
        rt = time_proximity_rank(sc, start, sc.truth.culprit_id)
        ours.append(r)
        tp.append(rt)
        log(f"  seed {seed} releases={len(sc.truth.releases)} detected={inc is not None!s:5s} rank={r} "
            f"time-proximity={rt} {time.perf_counter() - t0:.1f}s")

    def hr(ranks: list[int | None]) -> dict[str, float]:
        n = len(ranks)
        return {"n": n, "hr1": round(sum(1 for x in ranks if x == 1) / max(n, 1), 4),
                "hr3": round(sum(1 for x in ranks if x is not None and x <= 3) / max(n, 1), 4)}

    return {"seeds": [seeds[0], seeds[-1]], "ours": hr(ours), "time_proximity": hr(tp)}


STYLE_TITLES = {
    "sim": "root service, infrastructure faults with no culprit change",
    "no-topology": "root service, the same faults with NO call graph posted",
    "real": "root service, the same faults as real recordings come: no call graph, metrics named and scaled as "
            "real recordings name them (latency-90 in s, mem in bytes, container_cpu_usage_cores, "
            "http.server.duration.p95, CPUUtilization ...), error metrics on ~40% of services, no latency on "
            "datastores, no logs in half",
}


def print_root(res: dict[str, Any]) -> None:
    style = res.get("style", "sim")
    alert_at = "at the fault's injection time" if style == "real" else "3 min after the fault"
    print(f"{STYLE_TITLES.get(style, style)} (seeds {res['seeds'][0]}-{res['seeds'][1]}, never used for tuning; "
          f"fault detected in {res['detected']} of {res['scenarios']})")
    print("  incidents opened by the detector:")
    print(f"    ours      {_fmt(res['ours'])}")
    print(f"    NSigma    {_fmt(res['nsigma'])}")
    print(f"    random    {_fmt(res['random'])}")
    print(f"    a change shown as the convincing top suspect (there is none): {res['change_shown']} of "
          f"{res['ours']['n']}")
    print(f"  every scenario as an alert-opened incident (alert on the entry service {alert_at}, no "
          "anomaly; engine on the same data):")
    print(f"    ours      {_fmt(res['alert_only'])}")
    print(f"    NSigma    {_fmt(res['nsigma_all'])}")
    for k, m in res["by_kind"].items():
        print(f"  {k:17s} {_fmt(m)}")


def print_releases(res: dict[str, Any]) -> None:
    o, t = res["ours"], res["time_proximity"]
    print(f"simultaneous releases (3-6 rolling deploys within 10 min, one faulty; seeds {res['seeds'][0]}-"
          f"{res['seeds'][1]})")
    print(f"  ours            HR@1 {o['hr1']:.3f}  HR@3 {o['hr3']:.3f}  (n={o['n']})")
    print(f"  time proximity  HR@1 {t['hr1']:.3f}  HR@3 {t['hr3']:.3f}  (n={t['n']})")
