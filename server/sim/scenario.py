"""Seeded historical scenarios with ground truth (pure).

``generate_scenario(seed)`` builds a fleet, a few hours of metrics, logs and change
events in the HTTP contract's format, and a :class:`Truth` saying which change caused
what. Kinds:

* ``deployment`` / ``config_change`` / ``flag_change``: one bad change of that kind
  starts a fault (latency, errors or both) on its service, at the change or shortly
  after (rolling deploys ramp up over minutes; flags scale with their rollout share);
  the fault propagates to the callers.
* ``control``: only benign changes and one-point blips; nothing should be detected.
* ``mixed``: a culprit kind drawn from the organisation's profile.

Every scenario also has benign changes all along (deployments with diffs, config and
flag changes), decoys near the onset (on callers, callees, unrelated services and an
earlier change on the faulty service itself), one-point blips, benign noise log
templates, and optionally a rollback that ends the fault. With ``complication_prob``
(30 %) the culprit's effect starts 3-15 min after the change ("delayed"), half of those
with another benign change of the same service between them ("crowded"), so the
change closest to the onset is not always the culprit. ``org="biased"`` is an
organisation whose culprits are usually flag changes on one service while a benign
deployment of the same service lands closer to the onset (its flag SDK picks up flag
changes after a polling delay), so a generic prior is often wrong and labels must help.
``org="biased_config"`` is the same idea with config changes on ``db-proxy`` (its
connection pools pick up new settings when they recycle, minutes later).

Ground truth lives only in ``Scenario.truth``; ids and descriptions of culprits look
exactly like those of benign changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from server.sim import changes as ch
from server.sim.fleet import (
    STEP_S,
    Blip,
    Fault,
    Fleet,
    affected_services,
    generate_metrics,
    make_fleet,
    metric_points,
)
from server.sim.logs import (
    LogSource,
    access_logs,
    background_logs,
    benign_noise_templates,
    caller_sources,
    fault_templates,
    source_logs,
)

CULPRIT_KINDS: tuple[str, ...] = ("deployment", "config_change", "flag_change")
#: root-cause scenarios (server.sim.rootcause): infrastructure faults with no culprit change,
#: and several services releasing within minutes of each other
ROOTCAUSE_KINDS: tuple[str, ...] = ("cpu", "mem", "disk", "delay", "loss", "releases")
KINDS: tuple[str, ...] = (*CULPRIT_KINDS, "control", "mixed", *ROOTCAUSE_KINDS)
BASE_EPOCH = 1793577600.0  # 2026-11-02T00:00:00Z
DEFAULT_MIX: dict[str, float] = {"deployment": 0.35, "config_change": 0.2, "flag_change": 0.2, "control": 0.25}


@dataclass(frozen=True, slots=True)
class OrgProfile:
    name: str
    kind_weights: tuple[float, float, float] = (0.55, 0.25, 0.2)  # deployment, config, flag
    pattern_service: str | None = None  # culprits are usually changes of pattern_kind on this service
    pattern_prob: float = 0.0
    pattern_kind: str = "flag_change"


ORGS: dict[str, OrgProfile] = {
    "default": OrgProfile("default"),
    "biased": OrgProfile("biased", pattern_service="pricing", pattern_prob=0.8),
    # Config changes on db-proxy take effect when its pools recycle, minutes later.
    "biased_config": OrgProfile("biased_config", pattern_service="db-proxy", pattern_prob=0.8,
                                pattern_kind="config_change"),
}


@dataclass(slots=True)
class Truth:
    kind: str  # deployment / config_change / flag_change / control
    culprit_id: str | None = None
    culprit_kind: str | None = None
    culprit_service: str | None = None
    fault_service: str | None = None
    fault_kind: str | None = None  # latency / errors / both
    onset: float | None = None
    fault_end: float | None = None
    affected_services: list[str] = field(default_factory=list)
    rolled_back: bool = False
    rollback_id: str | None = None
    rollback_ts: float | None = None
    decoy_ids: list[str] = field(default_factory=list)
    blips: list[dict[str, Any]] = field(default_factory=list)
    logs_mention_culprit: bool = False
    org_pattern: bool = False
    complication: str | None = None  # None / "delayed" / "crowded" (see generate_scenario)
    latency_factor: float = 1.0
    error_add: float = 0.0
    releases: list[str] = field(default_factory=list)  # "releases" scenarios: every release's change id


@dataclass(slots=True)
class Scenario:
    seed: int
    kind: str
    org: str
    start: float
    end: float
    edges: list[dict[str, str]]
    metrics: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    truth: Truth
    step: float = STEP_S

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Scenario:
        data = dict(d)
        data["truth"] = Truth(**data["truth"])
        return Scenario(**data)

    def changes_of(self, kind: str) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["kind"] == kind]


def org_profile(org: str) -> OrgProfile:
    if org in ORGS:
        return ORGS[org]
    raise ValueError(f"unknown org {org!r}; known: {', '.join(ORGS)}")


def _streams(seed: int, org: str) -> list[np.random.Generator]:
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(org.encode())])
    return [np.random.default_rng(s) for s in ss.spawn(5)]


def _pick_fault_service(rng: np.random.Generator, fleet: Fleet) -> str:
    names = fleet.names
    w = np.array([0.3 if not fleet.callers(s) else 1.0 for s in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _fault_kind(rng: np.random.Generator) -> str:
    return str(rng.choice(["latency", "errors", "both"], p=[0.45, 0.35, 0.2]))


def _magnitudes(rng: np.random.Generator, fault_kind: str, share: float = 1.0) -> tuple[float, float]:
    lat = float(rng.uniform(1.6, 4.0)) if fault_kind in ("latency", "both") else 1.0
    err = float(rng.uniform(0.02, 0.15)) if fault_kind in ("errors", "both") else 0.0
    return 1.0 + (lat - 1.0) * share, err * share


def generate_scenario(
    seed: int, *, kind: str = "mixed", history_hours: float = 2.0, org: str = "default",
    n_services: int = 10, rollback: bool | None = None, mention_prob: float = 0.5,
    benign_per_hour: float = 5.0, blips_per_hour: float = 2.0, post_onset_minutes: float = 30.0,
    access_per_tick: int = 2, complication_prob: float = 0.3, drift: float = 0.0, magnitude: float = 1.0,
    history_minutes: float | None = None, resolution_s: float = STEP_S,
) -> Scenario:
    """A deterministic scenario for ``seed`` (see the module docstring for kinds).

    ``magnitude`` scales the fault (latency factor - 1 and added error rate; 1 = latency
    x1.6-4, +2-15 % errors) for detection-sensitivity sweeps; ``drift`` adds slow
    autocorrelated latency noise (see :func:`server.sim.fleet.generate_metrics`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    profile = org_profile(org)
    if kind in ROOTCAUSE_KINDS:
        from server.sim.rootcause import generate_rootcause_scenario

        return generate_rootcause_scenario(
            seed, kind=kind, streams=_streams(seed, org), org=org, n_services=n_services,
            history_minutes=history_minutes, resolution_s=resolution_s, benign_per_hour=benign_per_hour,
            blips_per_hour=blips_per_hour, magnitude=magnitude)
    r_fleet, r_time, r_metrics, r_logs, r_extra = _streams(seed, org)
    fleet = make_fleet(r_fleet, n_services)
    versions = ch.VersionBook()
    start = BASE_EPOCH + float(r_time.integers(0, 28)) * 86400.0 + float(r_time.integers(0, 24 * 360)) * STEP_S
    n = int(round(history_hours * 3600.0 / STEP_S))
    end = start + n * STEP_S
    ts = start + STEP_S * np.arange(n)

    # ---- the culprit and its fault -------------------------------------------------
    pattern = (kind in ("mixed", profile.pattern_kind) and profile.pattern_service in fleet.names
               and r_time.random() < profile.pattern_prob)
    if kind == "mixed":
        kind = profile.pattern_kind if pattern else str(r_time.choice(CULPRIT_KINDS, p=np.array(profile.kind_weights)))
    truth = Truth(kind=kind, org_pattern=bool(pattern))
    changes: list[dict[str, Any]] = []
    faults: list[Fault] = []
    log_sources: list[LogSource] = []
    onset_nominal = end - post_onset_minutes * 60.0 + float(r_time.uniform(-300.0, 300.0))
    onset_nominal = float(np.clip(onset_nominal, start + 0.4 * (end - start), end - 600.0))
    onset_nominal = start + round((onset_nominal - start) / STEP_S) * STEP_S + float(r_time.uniform(0, STEP_S))
    culprit: dict[str, Any] | None = None
    fault: Fault | None = None
    if kind != "control":
        fkind = _fault_kind(r_time)
        if pattern:
            svc = str(profile.pattern_service)
            culprit_ts = onset_nominal - float(r_time.uniform(180.0, 480.0))
            if profile.pattern_kind == "flag_change":
                culprit = ch.make_flag_change(r_time, fleet, svc, culprit_ts,
                                              rollout=int(r_time.choice([25, 50, 100])))
                lat, err = _magnitudes(r_time, fkind, magnitude * max(0.5, culprit["rollout_percent"] / 100.0))
            else:
                culprit = ch.make_config_change(r_time, svc, culprit_ts, bad=True)
                fkind = ch.BAD_CONFIG[culprit["key"]][1]
                lat, err = _magnitudes(r_time, fkind, magnitude)
            fault = Fault(svc, onset_nominal, latency_factor=lat, error_add=err,
                          ramp_s=float(r_time.uniform(0.0, 90.0)))
            # A benign deployment of the same service lands closer to the onset.
            decoy = ch.make_deployment(r_time, fleet, versions, svc, onset_nominal - float(r_time.uniform(20.0, 90.0)))
            changes.append(decoy)
            truth.decoy_ids.append(decoy["id"])
        else:
            svc = _pick_fault_service(r_time, fleet)
            if kind == "deployment":
                culprit_ts = onset_nominal - float(r_time.uniform(10.0, 60.0))
                culprit = ch.make_deployment(r_time, fleet, versions, svc, culprit_ts)
                lat, err = _magnitudes(r_time, fkind, magnitude)
                ramp = float(r_time.uniform(60.0, 300.0)) if r_time.random() < 0.5 else 0.0
            elif kind == "config_change":
                culprit_ts = onset_nominal - float(r_time.uniform(5.0, 30.0))
                culprit = ch.make_config_change(r_time, svc, culprit_ts, bad=True)
                fkind = ch.BAD_CONFIG[culprit["key"]][1]
                lat, err = _magnitudes(r_time, fkind, magnitude)
                ramp = 0.0
            else:
                culprit_ts = onset_nominal - float(r_time.uniform(0.0, 30.0))
                culprit = ch.make_flag_change(r_time, fleet, svc, culprit_ts, rollout=int(r_time.choice([10, 25, 50, 100])))
                lat, err = _magnitudes(r_time, fkind, magnitude * max(0.4, culprit["rollout_percent"] / 100.0))
                ramp = float(r_time.uniform(0.0, 60.0))
            fault = Fault(svc, onset_nominal, latency_factor=lat, error_add=err, ramp_s=ramp)
            # Complications: the effect shows minutes after the change (a leak, a cache
            # expiring, a traffic-dependent path), sometimes with another change of the
            # same service in between.
            if r_extra.random() < complication_prob:
                truth.complication = "crowded" if r_extra.random() < 0.5 else "delayed"
                culprit["ts"] = onset_nominal - float(r_extra.uniform(180.0, 900.0))
                fault.ramp_s = float(r_extra.uniform(60.0, 300.0))
                if truth.complication == "crowded":
                    other = ch.random_benign_change(r_extra, fleet, versions, svc,
                                                    onset_nominal - float(r_extra.uniform(20.0, 150.0)))
                    changes.append(other)
                    truth.decoy_ids.append(other["id"])
        # very short histories: the change must still be inside the data
        culprit["ts"] = min(max(culprit["ts"], start + 30.0), fault.start)
        changes.append(culprit)
        faults.append(fault)
        truth.culprit_id = culprit["id"]
        truth.culprit_kind = culprit["kind"]
        truth.culprit_service = svc
        truth.fault_service = svc
        truth.fault_kind = fkind
        truth.onset = fault.start
        truth.latency_factor = fault.latency_factor
        truth.error_add = fault.error_add
        truth.logs_mention_culprit = bool(r_time.random() < mention_prob)
        templates = fault_templates(r_logs, fleet, culprit, svc, fkind, truth.logs_mention_culprit)
        log_sources.append(LogSource(svc, templates, rate=float(r_time.uniform(1.0, 4.0)), fault=fault))
        log_sources.extend(caller_sources(fleet, fault, fkind))
        # rollback
        do_rollback = rollback if rollback is not None else bool(r_time.random() < 0.4)
        rb_ts = fault.start + float(r_time.uniform(300.0, 1200.0))
        if do_rollback and rb_ts < end - 300.0:
            if culprit["kind"] == "deployment":
                rb = ch.make_rollback_deployment(r_time, culprit, rb_ts)
            elif culprit["kind"] == "config_change":
                rb = ch.make_config_restore(r_time, culprit, rb_ts)
            else:
                rb = ch.make_flag_off(r_time, culprit, rb_ts)
            changes.append(rb)
            fault.end = rb_ts + float(r_time.uniform(20.0, 90.0))
            truth.rolled_back = True
            truth.rollback_id = rb["id"]
            truth.rollback_ts = rb_ts
            truth.fault_end = fault.end

    # ---- decoys near the onset -----------------------------------------------------------
    focus = fault.service if fault is not None else _pick_fault_service(r_time, fleet)
    related = {focus, *fleet.upstream(focus), *fleet.downstream(focus)}
    callers, callees = fleet.callers(focus), fleet.callees(focus)
    unrelated = [s for s in fleet.names if s not in related]
    decoy_specs: list[tuple[str, float]] = []
    if callers and r_time.random() < 0.8:
        decoy_specs.append((str(r_time.choice(callers)), onset_nominal - float(r_time.uniform(60.0, 600.0))))
    if callees and r_time.random() < 0.6:
        decoy_specs.append((str(r_time.choice(callees)), onset_nominal - float(r_time.uniform(60.0, 900.0))))
    pool = unrelated or [s for s in fleet.names if s != focus]
    if r_time.random() < 0.8:
        decoy_specs.append((str(r_time.choice(pool)), onset_nominal - float(r_time.uniform(-120.0, 300.0))))
    if r_time.random() < 0.5:
        decoy_specs.append((focus, onset_nominal - float(r_time.uniform(900.0, 3000.0))))
    for svc_d, t_d in decoy_specs:
        if start + 60.0 <= t_d < end:
            c = ch.random_benign_change(r_time, fleet, versions, svc_d, t_d)
            changes.append(c)
            truth.decoy_ids.append(c["id"])

    # ---- benign background changes ----------------------------------------------------------
    n_benign = int(r_time.poisson(benign_per_hour * history_hours))
    for t_b in np.sort(r_time.uniform(start + 60.0, end, n_benign)):
        c = ch.random_benign_change(r_time, fleet, versions, str(r_time.choice(fleet.names)), float(t_b))
        changes.append(c)
    for c in changes:
        if c["kind"] != "deployment" or c["id"] in (truth.culprit_id, truth.rollback_id):
            continue
        svc_c = c["service"]
        if r_time.random() < 0.3:  # benign deploys shift latency a little
            faults.append(Fault(svc_c, c["ts"] + 30.0, latency_factor=float(r_time.uniform(0.96, 1.05))))
        if r_time.random() < 0.15:
            log_sources.append(LogSource(svc_c, benign_noise_templates(r_logs, c), rate=0.3, start=c["ts"] + 20.0,
                                         end=c["ts"] + float(r_time.uniform(600.0, 3600.0))))

    # ---- one-point blips, away from the onset -------------------------------------------------
    blips: list[Blip] = []
    for _ in range(int(r_time.poisson(blips_per_hour * history_hours))):
        t_b = start + STEP_S * float(r_time.integers(30, max(31, n - 1)))
        if truth.onset is not None and abs(t_b - truth.onset) < 300.0:
            continue
        metric = str(r_time.choice(["p95_latency_ms", "p95_latency_ms", "error_rate", "qps"]))
        factor = {"p95_latency_ms": float(r_time.uniform(2.5, 5.0)), "error_rate": float(r_time.uniform(3.0, 8.0)),
                  "qps": float(r_time.uniform(1.8, 2.5))}[metric]
        blips.append(Blip(str(r_time.choice(fleet.names)), metric, t_b, factor))
    truth.blips = [{"service": b.service, "metric": b.metric, "ts": b.ts} for b in blips]

    # ---- series and logs -------------------------------------------------------------------
    series = generate_metrics(fleet, ts, r_metrics, faults, blips, drift=drift)
    if fault is not None:
        affected = affected_services(fleet, series, fault.start, fault.end)
        truth.affected_services = [fault.service] + [x for x in affected if x != fault.service]
    logs = access_logs(r_logs, fleet, series, access_per_tick)
    logs += background_logs(r_logs, fleet, series)
    logs += source_logs(r_logs, series, log_sources)
    logs = [lg for lg in logs if start <= lg["ts"] < end]
    logs.sort(key=lambda lg: lg["ts"])
    changes = [c for c in changes if start <= c["ts"] < end]
    changes.sort(key=lambda c: c["ts"])
    return Scenario(
        seed=int(seed), kind=kind, org=org, start=start, end=end, edges=fleet.edge_dicts(),
        metrics=metric_points(series), logs=logs, changes=changes, truth=truth,
    )


def pick_kind(seed: int, mix: Mapping[str, float] | None = None) -> str:
    """The scenario kind of ``seed`` under ``mix`` (deterministic)."""
    m = dict(mix or DEFAULT_MIX)
    kinds = sorted(m)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r} in mix")
    w = np.array([max(0.0, float(m[k])) for k in kinds])
    if w.sum() <= 0:
        raise ValueError("mix weights must sum to more than 0")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7919])
    return kinds[int(rng.choice(len(kinds), p=w / w.sum()))]


def scenario_suite(seeds: Iterable[int], mix: Mapping[str, float] | None = None, **kwargs: Any) -> list[Scenario]:
    """One scenario per seed, the kind of each drawn from ``mix`` (default: deployments,
    config and flag culprits and control runs); ``kwargs`` go to :func:`generate_scenario`."""
    return [generate_scenario(s, kind=pick_kind(s, mix), **kwargs) for s in seeds]


def parse_seeds(spec: str) -> list[int]:
    """Seeds from a spec such as ``"1000-1009,1500"`` (ranges inclusive)."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out
