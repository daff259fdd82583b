"""A simulated service fleet: call topology and vectorised metric generation (pure).

Every service reports ``p95_latency_ms``, ``error_rate`` and ``qps`` every 10 s.

* ``qps`` follows a daily seasonality at the entry services (those nobody calls) and
  flows down the call graph: a callee's traffic is the sum of its callers' traffic
  times the edge fan-out; the observed value has Poisson counting noise.
* ``p95_latency_ms`` is a service's own latency (base 20-300 ms, mildly load
  dependent, lognormal noise) plus a share of each callee's latency, so a slow callee
  makes its callers slower, attenuated at every hop.
* ``error_rate`` is the service's own failure probability plus a share of each
  callee's error rate (retries absorb the rest); observed as errors / requests of
  the 10-s window (binomial noise).

Faults (latency factor and/or added error probability, with an optional ramp) act on
one service's own behaviour and propagate upstream through the same composition.
Everything is deterministic given a ``numpy.random.Generator``; there is no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

STEP_S = 10.0
METRICS: tuple[str, ...] = ("p95_latency_ms", "error_rate", "qps")

# Service name -> (python package, code modules, HTTP endpoints, flags).
CATALOG: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "frontend": ("frontend", ("render", "routes", "api_client", "ssr", "assets", "session_cookie"),
                 ("GET /", "GET /product/{id}", "GET /cart", "GET /search"), ("new_homepage", "streaming_ssr")),
    "checkout": ("checkout", ("cart", "orders", "promotions", "address", "session", "idempotency"),
                 ("POST /api/checkout", "GET /api/cart/{id}", "PUT /api/cart/{id}"),
                 ("one_click_checkout", "new_cart_service")),
    "payments": ("payments", ("tokenizer", "charge", "refunds", "ledger", "card_vault", "webhooks"),
                 ("POST /v1/charges", "POST /v1/refunds", "GET /v1/charges/{id}"),
                 ("async_tokenizer", "three_ds_v2")),
    "pricing": ("pricing", ("engine", "rules", "currency", "discounts", "tax", "quotes"),
                ("POST /price/quote", "GET /price/item/{id}"), ("new_pricing_engine", "dynamic_discounts")),
    "inventory": ("inventory", ("stock", "reservations", "warehouse", "sync", "allocation"),
                  ("GET /stock/{id}", "POST /reservations"), ("realtime_stock", "soft_reservations")),
    "search": ("search", ("query_parser", "ranking", "index_client", "autocomplete", "synonyms"),
               ("GET /search", "GET /suggest"), ("semantic_search", "typo_tolerance")),
    "catalog": ("catalog", ("products", "categories", "images", "variants", "cache"),
                ("GET /products/{id}", "GET /categories"), ("image_cdn_v2", "variant_merge")),
    "auth": ("auth", ("tokens", "sessions", "oauth", "passwords", "rbac"),
             ("POST /token", "GET /session/{id}"), ("passwordless_login", "jwt_rotation")),
    "shipping": ("shipping", ("rates", "carriers", "labels", "tracking"),
                 ("POST /rates", "GET /tracking/{id}"), ("carrier_api_v3", "split_shipments")),
    "db-proxy": ("dbproxy", ("pool", "router", "replicas", "health", "protocol"),
                 ("QUERY read", "QUERY write"), ("read_replica_routing", "pool_prewarm")),
    "recommendations": ("recommendations", ("model", "features", "candidates", "reranker"),
                        ("GET /recs/{id}",), ("embeddings_v2", "diversity_boost")),
    "notifications": ("notifications", ("email", "push", "templates", "queue"),
                      ("POST /notify",), ("batch_emails", "push_v2")),
}

# Service order: the first n form a sensible sub-fleet.
SERVICE_ORDER: tuple[str, ...] = (
    "frontend", "checkout", "payments", "pricing", "inventory", "search", "catalog", "auth",
    "shipping", "db-proxy", "recommendations", "notifications",
)

DEFAULT_EDGES: tuple[tuple[str, str], ...] = (
    ("frontend", "checkout"), ("frontend", "search"), ("frontend", "catalog"), ("frontend", "auth"),
    ("frontend", "recommendations"), ("checkout", "payments"), ("checkout", "pricing"),
    ("checkout", "inventory"), ("checkout", "shipping"), ("checkout", "auth"), ("checkout", "notifications"),
    ("search", "catalog"), ("search", "pricing"), ("catalog", "db-proxy"), ("payments", "db-proxy"),
    ("pricing", "db-proxy"), ("inventory", "db-proxy"), ("shipping", "inventory"),
    ("recommendations", "catalog"), ("auth", "db-proxy"),
)


@dataclass(slots=True)
class ServiceSpec:
    name: str
    package: str
    modules: tuple[str, ...]
    endpoints: tuple[str, ...]
    flags: tuple[str, ...]
    base_latency_ms: float  # own p95 latency, without callees
    base_error_rate: float  # own failure probability
    entry_qps: float  # external traffic (only entry services have it)
    latency_sigma: float  # lognormal noise of own latency


@dataclass(slots=True)
class EdgeSpec:
    source: str  # caller
    target: str  # callee
    fanout: float  # calls to target per request of source
    latency_weight: float  # share of the callee's p95 in the caller's p95
    error_weight: float  # share of the callee's errors surfacing at the caller


@dataclass(slots=True)
class Fleet:
    services: list[ServiceSpec]
    edges: list[EdgeSpec]
    season_amplitude: float = 0.3
    season_peak_hour: float = 15.0  # UTC hour of the daily traffic peak

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def spec(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def callers(self, name: str) -> list[str]:
        return [e.source for e in self.edges if e.target == name]

    def callees(self, name: str) -> list[str]:
        return [e.target for e in self.edges if e.source == name]

    def upstream(self, name: str) -> list[str]:
        """Every transitive caller of ``name`` (nearest first)."""
        seen: list[str] = []
        frontier = [name]
        while frontier:
            nxt: list[str] = []
            for s in frontier:
                for c in self.callers(s):
                    if c not in seen and c != name:
                        seen.append(c)
                        nxt.append(c)
            frontier = nxt
        return seen

    def downstream(self, name: str) -> list[str]:
        seen: list[str] = []
        frontier = [name]
        while frontier:
            nxt: list[str] = []
            for s in frontier:
                for c in self.callees(s):
                    if c not in seen and c != name:
                        seen.append(c)
                        nxt.append(c)
            frontier = nxt
        return seen

    def topo_order(self) -> list[str]:
        """Callers before callees."""
        indeg = {n: 0 for n in self.names}
        for e in self.edges:
            indeg[e.target] += 1
        order: list[str] = []
        ready = [n for n in self.names if indeg[n] == 0]
        while ready:
            n = ready.pop(0)
            order.append(n)
            for c in self.callees(n):
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        if len(order) != len(self.names):
            raise ValueError("topology has a cycle")
        return order

    def edge_dicts(self) -> list[dict[str, str]]:
        return [{"source": e.source, "target": e.target} for e in self.edges]


def make_fleet(rng: np.random.Generator, n_services: int = 10) -> Fleet:
    """A fleet of ``n_services`` (2-12) with randomised but realistic parameters."""
    n = max(2, min(n_services, len(SERVICE_ORDER)))
    names = list(SERVICE_ORDER[:n])
    edges_raw = [(a, b) for a, b in DEFAULT_EDGES if a in names and b in names]
    called = {b for _, b in edges_raw}
    callers_of = {s: [a for a, b in edges_raw if b == s] for s in names}
    # A service left without callers in a small fleet gets one from an earlier service.
    for i, s in enumerate(names[1:], start=1):
        if not callers_of[s] and s not in ("frontend",):
            src = names[int(rng.integers(0, i))]
            edges_raw.append((src, s))
            called.add(s)
    services: list[ServiceSpec] = []
    for s in names:
        pkg, modules, endpoints, flags = CATALOG[s]
        is_entry = s not in called
        services.append(ServiceSpec(
            name=s, package=pkg, modules=modules, endpoints=endpoints, flags=flags,
            base_latency_ms=float(np.exp(rng.uniform(np.log(20.0), np.log(300.0)))),
            base_error_rate=float(np.exp(rng.uniform(np.log(0.0008), np.log(0.006)))),
            entry_qps=float(rng.uniform(150.0, 600.0)) if is_entry else 0.0,
            latency_sigma=float(rng.uniform(0.06, 0.14)),
        ))
    edges = [
        EdgeSpec(source=a, target=b, fanout=float(rng.uniform(0.3, 1.5)),
                 latency_weight=float(rng.uniform(0.25, 0.6)), error_weight=float(rng.uniform(0.2, 0.5)))
        for a, b in edges_raw
    ]
    return Fleet(services=services, edges=edges, season_peak_hour=float(rng.uniform(13.0, 20.0)))


@dataclass(slots=True)
class Fault:
    """A change in one service's own behaviour from ``start`` (ramping over ``ramp_s``)
    until ``end`` (``None`` = until the end of the data)."""

    service: str
    start: float
    end: float | None = None
    latency_factor: float = 1.0
    error_add: float = 0.0
    ramp_s: float = 0.0

    def intensity(self, ts: np.ndarray) -> np.ndarray:
        t = np.asarray(ts, dtype=np.float64)
        if self.ramp_s > 0:
            x = np.clip((t - self.start) / self.ramp_s, 0.0, 1.0)
            # Within the first step after the change the effect is already visible.
            x = np.where(t >= self.start, np.maximum(x, STEP_S / (self.ramp_s + STEP_S)), 0.0)
        else:
            x = (t >= self.start).astype(np.float64)
        if self.end is not None:
            x = np.where(t >= self.end, 0.0, x)
        return x


@dataclass(slots=True)
class Blip:
    """A one-point outlier on one series (GC pause, scrape glitch ...)."""

    service: str
    metric: str
    ts: float
    factor: float


@dataclass(slots=True)
class FleetSeries:
    ts: np.ndarray
    values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    # noise-free latency and error probability (used to derive ground truth and logs)
    latent_latency: dict[str, np.ndarray] = field(default_factory=dict)
    latent_error: dict[str, np.ndarray] = field(default_factory=dict)


def _wander(fleet: Fleet, n: int, rng: np.random.Generator, sd: float,
            state: dict[str, float] | None) -> dict[str, np.ndarray]:
    phi = float(np.exp(-STEP_S / 600.0))
    names = fleet.names
    innov = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), (n, len(names)))
    prev = np.array([state[s] if state is not None and s in state else float(rng.normal(0.0, sd)) for s in names])
    x = np.empty((n, len(names)))
    for i in range(n):
        prev = phi * prev + innov[i]
        x[i] = prev
    if state is not None:
        state.update({s: float(prev[j]) for j, s in enumerate(names)})
    return {s: x[:, j] for j, s in enumerate(names)}


def load_factor(fleet: Fleet, ts: np.ndarray) -> np.ndarray:
    """Daily traffic shape, 1 on average, peak at ``fleet.season_peak_hour`` UTC."""
    hours = (np.asarray(ts, dtype=np.float64) % 86400.0) / 3600.0
    return 1.0 + fleet.season_amplitude * np.cos(2.0 * np.pi * (hours - fleet.season_peak_hour) / 24.0)


def generate_metrics(
    fleet: Fleet, ts: np.ndarray, rng: np.random.Generator,
    faults: Iterable[Fault] = (), blips: Iterable[Blip] = (),
    drift: float = 0.0, drift_state: dict[str, float] | None = None,
) -> FleetSeries:
    """All three metrics of every service at the timestamps ``ts`` (vectorised).

    ``drift`` (default off) adds a slow AR(1) wander of each service's latency (standard
    deviation ``drift`` in log space, time constant 10 min): autocorrelated noise, as
    real latency has, that a detector must not mistake for regressions. ``drift_state``
    carries the wander from one call to the next (the live simulator's ticks).
    """
    t = np.asarray(ts, dtype=np.float64)
    n = t.shape[0]
    wander = _wander(fleet, n, rng, drift, drift_state) if drift > 0 else {}
    load = load_factor(fleet, t)
    faults = list(faults)
    lat_mult = {s: np.ones(n) for s in fleet.names}
    err_add = {s: np.zeros(n) for s in fleet.names}
    for f in faults:
        if f.service not in lat_mult:
            continue
        inten = f.intensity(t)
        lat_mult[f.service] = lat_mult[f.service] * (1.0 + (f.latency_factor - 1.0) * inten)
        err_add[f.service] = err_add[f.service] + f.error_add * inten

    order = fleet.topo_order()
    specs = {s.name: s for s in fleet.services}
    # qps: callers first
    latent_qps: dict[str, np.ndarray] = {}
    for s in order:
        q = specs[s].entry_qps * load * np.exp(rng.normal(0.0, 0.03, n))
        for e in fleet.edges:
            if e.target == s:
                q = q + latent_qps[e.source] * e.fanout
        latent_qps[s] = np.maximum(q, 0.5)
    # latency and errors: callees first
    out = FleetSeries(ts=t)
    lat_obs: dict[str, np.ndarray] = {}
    err_p: dict[str, np.ndarray] = {}
    for s in reversed(order):
        spec = specs[s]
        own = spec.base_latency_ms * (1.0 + 0.25 * (load - 1.0))
        latent = own.copy()
        obs = own * np.exp(rng.normal(0.0, spec.latency_sigma, n))
        if s in wander:
            obs = obs * np.exp(wander[s])
        p = spec.base_error_rate * (1.0 + 0.4 * (load - 1.0)) + err_add[s]
        for e in fleet.edges:
            if e.source == s:
                latent = latent + e.latency_weight * out.latent_latency[e.target]
                obs = obs + e.latency_weight * lat_obs[e.target]
                p = p + e.error_weight * err_p[e.target]
        # a latency fault scales the service's whole p95 (own work and waits on callees)
        latent = latent * lat_mult[s]
        obs = obs * lat_mult[s]
        p = np.clip(p, 0.0, 1.0)
        out.latent_latency[s] = latent
        out.latent_error[s] = p
        lat_obs[s] = obs
        err_p[s] = p
    for s in fleet.names:
        requests = rng.poisson(latent_qps[s] * STEP_S)
        qps = requests / STEP_S
        denom = np.maximum(requests, 1)
        errors = rng.binomial(denom, err_p[s])
        out.values[(s, "qps")] = qps
        out.values[(s, "error_rate")] = errors / denom
        out.values[(s, "p95_latency_ms")] = lat_obs[s].copy()
    for b in blips:
        key = (b.service, b.metric)
        if key not in out.values or n == 0:
            continue
        i = int(np.argmin(np.abs(t - b.ts)))
        if abs(t[i] - b.ts) > STEP_S / 2:
            continue
        if b.metric == "error_rate":
            out.values[key][i] = min(1.0, out.values[key][i] + 0.01 * b.factor)
        else:
            out.values[key][i] = out.values[key][i] * b.factor
    for key, v in out.values.items():
        digits = 5 if key[1] == "error_rate" else 1
        out.values[key] = np.round(v, digits)
    return out


def metric_points(series: FleetSeries, services: Sequence[str] | None = None) -> list[dict[str, object]]:
    """Contract-format metric points (ts in epoch seconds), sorted by ts then service."""
    keys = [k for k in series.values if services is None or k[0] in services]
    keys.sort()
    ts_list = series.ts.tolist()
    cols = [(k, series.values[k].tolist()) for k in keys]
    points: list[dict[str, object]] = []
    for i, t in enumerate(ts_list):
        for (svc, metric), vals in cols:
            points.append({"service": svc, "metric": metric, "ts": t, "value": vals[i]})
    return points


def affected_services(fleet: Fleet, series: FleetSeries, onset: float, end: float | None,
                      rel_latency: float = 0.15, abs_error: float = 0.01) -> list[str]:
    """Services whose noise-free latency or error probability shifts materially during
    the fault (ground truth for "which services should be in the incident")."""
    t = series.ts
    before = (t < onset) & (t >= onset - 1800)
    during = (t >= onset) & ((t < end) if end is not None else np.ones_like(t, dtype=bool))
    if not before.any() or not during.any():
        return []
    out: list[str] = []
    for s in fleet.names:
        lb = float(np.median(series.latent_latency[s][before]))
        ld = float(np.median(series.latent_latency[s][during]))
        eb = float(np.median(series.latent_error[s][before]))
        ed = float(np.median(series.latent_error[s][during]))
        if ld > lb * (1.0 + rel_latency) or ed - eb > abs_error:
            out.append(s)
    return out
