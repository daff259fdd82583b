"""Log generation for the simulated fleet (pure).

* Access logs: a few sampled INFO lines per service per tick (method, path, status,
  duration drawn from the service's current latency and error probability).
* Background WARN/ERROR lines from a per-service vocabulary at a low rate.
* Fault logs: NEW templates that appear while a fault is active. Whether they mention
  the change (file name from the diff, config key, flag name, version) is decided by
  the caller (a probability in the scenario), so a ranker cannot rely on it. Direct
  callers of the faulty service log timeouts / failed calls naming the callee.
* Benign noise templates: some benign deployments start a harmless WARN that names one
  of their files (deprecation warnings and the like).

Templates carry placeholders ``{n} {a} {ms} {hex} {word} {id}`` filled per line with random
values, the way real logs vary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from server.sim.fleet import STEP_S, Fault, Fleet, FleetSeries

Template = tuple[str, str]  # (level, template)

_WORDS = ("orders", "sessions", "quotes", "items", "carts", "users", "events", "tokens", "rates")


def fill(rng: np.random.Generator, template: str) -> str:
    out = template
    while "{n}" in out:
        out = out.replace("{n}", str(int(rng.integers(1, 500))), 1)
    while "{ms}" in out:
        out = out.replace("{ms}", str(int(rng.lognormal(6.5, 0.5))), 1)
    while "{hex}" in out:
        out = out.replace("{hex}", "".join("0123456789abcdef"[int(i)] for i in rng.integers(0, 16, 12)), 1)
    while "{word}" in out:
        out = out.replace("{word}", str(rng.choice(_WORDS)), 1)
    while "{a}" in out:
        out = out.replace("{a}", str(int(rng.integers(1, 5))), 1)
    while "{id}" in out:
        out = out.replace("{id}", str(int(rng.integers(1000, 999999))), 1)
    return out


def background_vocabulary(fleet: Fleet, service: str) -> list[Template]:
    spec = fleet.spec(service)
    vocab: list[Template] = [
        ("WARN", "slow request took {ms} ms (request_id={hex})"),
        ("WARN", "client disconnected before response was sent (request_id={hex})"),
        ("ERROR", "invalid request payload: missing field 'customer_id' (request_id={hex})"),
        ("WARN", "cache miss rate high for prefix {word}: {n}%"),
        ("ERROR", "request {hex} failed: 500 Internal Server Error"),
        ("WARN", "GC pause of {ms} ms"),
        ("WARN", f"{spec.modules[0]}: retry budget low ({{n}} left)"),
    ]
    for callee in fleet.callees(service):
        vocab.append(("WARN", f"retrying request to {callee} (attempt {{a}})"))
        vocab.append(("ERROR", f"upstream timeout calling {callee} after {{ms}} ms"))
    return vocab


def fault_templates(rng: np.random.Generator, fleet: Fleet, change: dict[str, Any] | None, service: str,
                    fault_kind: str, mention: bool) -> list[Template]:
    """New WARN/ERROR templates of a fault on ``service`` (caused by ``change`` if any)."""
    errors = fault_kind in ("errors", "both")
    latency = fault_kind in ("latency", "both")
    out: list[Template] = []
    if mention and change is not None:
        kind = change["kind"]
        if kind == "deployment":
            srcs = [f["path"] for f in change["diff"]["files"] if f["path"].endswith(".py")
                    and not f["path"].startswith("tests/")] or [change["diff"]["files"][0]["path"]]
            path = str(rng.choice(srcs))
            base = path.rsplit("/", 1)[-1]
            mod = base.removesuffix(".py")
            if errors:
                out.append(("ERROR", f"Unhandled exception in {base} line {{n}}: TypeError: "
                                     "'NoneType' object is not subscriptable"))
                out.append(("ERROR", f'Traceback (most recent call last): File "/app/{path}", line {{n}}, '
                                     "in handle_request"))
            if latency:
                out.append(("WARN", f"slow path in {base}: {{ms}} ms spent in {mod}.process()"))
                out.append(("WARN", f"{service} {change['version']}: handler exceeded latency budget ({{ms}} ms)"))
        elif kind == "config_change":
            k, v = change["key"], change["new_value"]
            if errors:
                out.append(("ERROR", f"request {{hex}} rejected: limit reached ({k}={v})"))
            if latency:
                out.append(("WARN", f"waiting for capacity: {k}={v} reached, queued {{ms}} ms"))
        else:
            flag = change["flag"]
            if errors:
                out.append(("ERROR", f"feature {flag}: evaluation failed for request {{hex}}, falling back"))
                out.append(("ERROR", f"{flag} code path raised RuntimeError: unsupported state"))
            if latency:
                out.append(("WARN", f"{flag} enabled: slow code path took {{ms}} ms"))
    else:
        if errors:
            out.append(tuple(rng.choice([  # type: ignore[arg-type]
                ("ERROR", "KeyError: 'currency_code' while handling request {hex}"),
                ("ERROR", "unexpected response shape from serializer: expected list, got dict"),
                ("ERROR", "request {hex} failed: ValueError: invalid literal for int() with base 10"),
                ("ERROR", "IntegrityError: duplicate key value violates unique constraint on {word}"),
            ])))
        if latency:
            out.append(tuple(rng.choice([  # type: ignore[arg-type]
                ("WARN", "connection pool exhausted (size={n}, waiting={n})"),
                ("WARN", "deadline exceeded after {ms} ms while waiting for worker"),
                ("WARN", "lock contention on {word} queue: waited {ms} ms"),
            ])))
    return out


@dataclass(slots=True)
class LogSource:
    """Lines from ``templates`` on ``service`` at ``rate`` per tick, modulated by ``fault``
    (its intensity) or active from ``start`` to ``end`` when ``fault`` is None."""

    service: str
    templates: list[Template]
    rate: float
    fault: Fault | None = None
    start: float = 0.0
    end: float | None = None

    def intensity(self, ts: np.ndarray) -> np.ndarray:
        if self.fault is not None:
            return self.fault.intensity(ts)
        x = (ts >= self.start).astype(np.float64)
        if self.end is not None:
            x = np.where(ts >= self.end, 0.0, x)
        return x


def _emit(rng: np.random.Generator, service: str, ts: np.ndarray, lam: np.ndarray,
          templates: list[Template], not_before: float = float("-inf")) -> list[dict[str, Any]]:
    """Poisson(lam[i]) lines in the 10 s that the metric point at ts[i] summarises."""
    counts = rng.poisson(np.maximum(lam, 0.0))
    out: list[dict[str, Any]] = []
    for i in np.nonzero(counts)[0]:
        for _ in range(int(counts[i])):
            level, tpl = templates[int(rng.integers(0, len(templates)))]
            out.append({"service": service, "ts": round(max(not_before, float(ts[i] - rng.uniform(0.0, STEP_S))), 3),
                        "level": level, "message": fill(rng, tpl)})
    return out


def access_logs(rng: np.random.Generator, fleet: Fleet, series: FleetSeries, per_tick: int = 2) -> list[dict[str, Any]]:
    ts = series.ts
    n = ts.shape[0]
    out: list[dict[str, Any]] = []
    if per_tick <= 0 or n == 0:
        return out
    for spec in fleet.services:
        s = spec.name
        m = n * per_tick
        tick = np.repeat(np.arange(n), per_tick)
        offs = -rng.uniform(0.0, STEP_S, m)
        dur = series.latent_latency[s][tick] * rng.lognormal(-0.6, 0.35, m)
        failed = rng.random(m) < series.latent_error[s][tick]
        status = np.where(failed, rng.choice([500, 502, 503], m), rng.choice([200, 200, 200, 201, 204, 404], m))
        eps = rng.integers(0, len(spec.endpoints), m)
        ids = rng.integers(1000, 99999, m)
        traces = rng.integers(0, 2**48, m)
        for j in range(m):
            ep = spec.endpoints[int(eps[j])].replace("{id}", str(int(ids[j])))
            d = int(dur[j])
            out.append({"service": s, "ts": round(float(ts[tick[j]] + offs[j]), 3), "level": "INFO",
                        "message": f"{ep} {int(status[j])} {d}ms",
                        "attributes": {"trace_id": f"{int(traces[j]):012x}", "status": int(status[j]),
                                       "duration_ms": d}})
    return out


def background_logs(rng: np.random.Generator, fleet: Fleet, series: FleetSeries,
                    rate: float = 0.12) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in fleet.services:
        lam = np.full(series.ts.shape[0], rate)
        out.extend(_emit(rng, spec.name, series.ts, lam, background_vocabulary(fleet, spec.name)))
    return out


def source_logs(rng: np.random.Generator, series: FleetSeries, sources: list[LogSource]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for src in sources:
        if not src.templates:
            continue
        lam = src.rate * src.intensity(series.ts)
        start = src.fault.start if src.fault is not None else src.start
        out.extend(_emit(rng, src.service, series.ts, lam, src.templates, not_before=start))
    return out


def caller_sources(fleet: Fleet, fault: Fault, fault_kind: str, rate: float = 1.5) -> list[LogSource]:
    """Direct callers of a faulty service log timeouts / failed calls naming it."""
    out: list[LogSource] = []
    for e in fleet.edges:
        if e.target != fault.service:
            continue
        tpls: list[Template] = []
        if fault_kind in ("latency", "both"):
            tpls.append(("ERROR", f"upstream timeout calling {fault.service} after {{ms}} ms"))
        if fault_kind in ("errors", "both"):
            tpls.append(("ERROR", f"call to {fault.service} failed: 503 Service Unavailable"))
        out.append(LogSource(service=e.source, templates=tpls, rate=rate * e.error_weight, fault=fault))
    return out


def benign_noise_templates(rng: np.random.Generator, change: dict[str, Any]) -> list[Template]:
    """A harmless new WARN a benign deployment may introduce, naming one of its files."""
    files = [f["path"] for f in change.get("diff", {}).get("files", []) if f["path"].endswith(".py")]
    if not files:
        return []
    base = str(rng.choice(files)).rsplit("/", 1)[-1]
    return [tuple(rng.choice([  # type: ignore[list-item]
        ("WARN", f"DeprecationWarning in {base}: legacy client API will be removed in a future release"),
        ("WARN", f"{base}: falling back to default for unset option '{{word}}_limit'"),
        ("WARN", f"slow import of {base} took {{ms}} ms at startup"),
    ]))]
