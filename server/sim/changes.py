"""Realistic change events for the simulated fleet (pure).

Deployments with diffs (source files, tests, the occasional migration, config or
dependency file), config changes and feature-flag changes, in the HTTP contract's
format (``ts`` as epoch seconds) plus a ``kind`` key. Ids look alike for every change
(``dep-``/``cfg-``/``flag-`` followed by random hex), whatever its role in a scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.sim.fleet import Fleet, ServiceSpec

AUTHORS: tuple[str, ...] = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar",
    "peggy", "trent", "victor", "wendy", "deploy-bot",
)

DEPLOY_VERBS: tuple[str, ...] = (
    "Refactor", "Speed up", "Fix edge case in", "Add metrics to", "Simplify", "Harden", "Clean up",
    "Add retries to", "Cache results of", "Validate input in", "Upgrade client for", "Log context in",
)

# key -> candidate values (strings as config stores hold them)
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "http.client.timeout_ms": ("500", "800", "1000", "1500", "2000", "3000"),
    "db.pool.max_size": ("5", "10", "20", "30", "50", "80"),
    "cache.ttl_s": ("0", "30", "60", "300", "600", "3600"),
    "retry.max_attempts": ("1", "2", "3", "4", "5"),
    "log.level": ("DEBUG", "INFO", "WARN"),
    "rate_limit.rps": ("200", "500", "1000", "2000"),
    "worker.threads": ("4", "8", "16", "32"),
    "circuit_breaker.error_threshold": ("0.05", "0.1", "0.2", "0.5"),
    "gc.max_pause_ms": ("50", "100", "200"),
    "feature_cache.refresh_s": ("10", "30", "60", "120"),
}

# How a bad value of a key hurts: (new-value picker index: "min" / "max", effect).
BAD_CONFIG: dict[str, tuple[str, str]] = {
    "http.client.timeout_ms": ("min", "errors"),
    "db.pool.max_size": ("min", "latency"),
    "cache.ttl_s": ("min", "latency"),
    "retry.max_attempts": ("max", "latency"),
    "worker.threads": ("min", "latency"),
    "circuit_breaker.error_threshold": ("min", "errors"),
    "rate_limit.rps": ("min", "errors"),
}


def hex_id(rng: np.random.Generator, n: int = 8) -> str:
    return "".join("0123456789abcdef"[int(i)] for i in rng.integers(0, 16, n))


@dataclass(slots=True)
class VersionBook:
    """Current version of every service; bumps on each deployment."""

    versions: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def current(self, rng: np.random.Generator, service: str) -> tuple[int, int, int]:
        if service not in self.versions:
            self.versions[service] = (int(rng.integers(1, 5)), int(rng.integers(0, 40)), int(rng.integers(0, 10)))
        return self.versions[service]

    def bump(self, rng: np.random.Generator, service: str) -> tuple[str, str]:
        ma, mi, pa = self.current(rng, service)
        new = (ma, mi + 1, 0) if rng.random() < 0.35 else (ma, mi, pa + 1)
        self.versions[service] = new
        return fmt_version((ma, mi, pa)), fmt_version(new)


def fmt_version(v: tuple[int, int, int]) -> str:
    return f"v{v[0]}.{v[1]}.{v[2]}"


def random_diff(rng: np.random.Generator, spec: ServiceSpec) -> list[dict[str, Any]]:
    """1-8 files: mostly source and tests, sometimes migrations, config or dependencies."""
    n_src = int(min(6, 1 + rng.geometric(0.5) - 1))
    mods = rng.choice(len(spec.modules), size=min(n_src, len(spec.modules)), replace=False)
    files: list[dict[str, Any]] = []
    for m in mods:
        mod = spec.modules[int(m)]
        files.append({"path": f"src/{spec.package}/{mod}.py", "added": int(rng.lognormal(3.0, 1.0)) + 1,
                      "removed": int(rng.lognormal(2.3, 1.1))})
        if rng.random() < 0.6:
            files.append({"path": f"tests/{spec.package}/test_{mod}.py", "added": int(rng.lognormal(2.8, 0.9)) + 1,
                          "removed": int(rng.lognormal(1.5, 1.0))})
    r = rng.random()
    if r < 0.06:
        num = int(rng.integers(10, 400))
        what = rng.choice(["add_index", "add_column", "backfill", "drop_legacy_table", "alter_type"])
        files.append({"path": f"migrations/{num:04d}_{what}.sql", "added": int(rng.integers(5, 80)),
                      "removed": int(rng.integers(0, 10))})
    elif r < 0.14:
        files.append({"path": f"config/{spec.name}.yaml", "added": int(rng.integers(1, 12)),
                      "removed": int(rng.integers(0, 8))})
    elif r < 0.21:
        dep = str(rng.choice(["requirements.txt", "poetry.lock", "pyproject.toml"]))
        files.append({"path": dep, "added": int(rng.integers(1, 40)), "removed": int(rng.integers(1, 40))})
    elif r < 0.24:
        files.append({"path": "Dockerfile", "added": int(rng.integers(1, 6)), "removed": int(rng.integers(0, 4))})
    return files


def make_deployment(rng: np.random.Generator, fleet: Fleet, versions: VersionBook, service: str,
                    ts: float) -> dict[str, Any]:
    spec = fleet.spec(service)
    prev, new = versions.bump(rng, service)
    diff = random_diff(rng, spec)
    first_src = next((f["path"] for f in diff if f["path"].startswith("src/")), diff[0]["path"])
    module = first_src.rsplit("/", 1)[-1].removesuffix(".py")
    verb = str(rng.choice(DEPLOY_VERBS))
    return {
        "kind": "deployment", "id": f"dep-{hex_id(rng)}", "service": service, "ts": float(ts),
        "version": new, "previous_version": prev, "commit": hex_id(rng, 7),
        "author": str(rng.choice(AUTHORS)), "description": f"{verb} {module}",
        "diff": {"files": diff},
    }


def make_rollback_deployment(rng: np.random.Generator, bad: dict[str, Any], ts: float) -> dict[str, Any]:
    return {
        "kind": "deployment", "id": f"dep-{hex_id(rng)}", "service": bad["service"], "ts": float(ts),
        "version": bad["previous_version"], "previous_version": bad["version"], "commit": hex_id(rng, 7),
        "author": str(rng.choice(AUTHORS)), "description": f"Roll back to {bad['previous_version']}",
        "diff": {"files": [{"path": f["path"], "added": f["removed"], "removed": f["added"]}
                           for f in bad["diff"]["files"]]},
    }


def make_config_change(rng: np.random.Generator, service: str, ts: float, key: str | None = None,
                       bad: bool = False) -> dict[str, Any]:
    keys = list(BAD_CONFIG) if bad else list(CONFIG_KEYS)
    k = key or str(rng.choice(keys))
    values = CONFIG_KEYS[k]
    if bad and k in BAD_CONFIG:
        pick, _ = BAD_CONFIG[k]
        new = values[0] if pick == "min" else values[-1]
        old_candidates = [v for v in values if v != new]
        old = old_candidates[len(old_candidates) // 2]
    else:
        i, j = rng.choice(len(values), size=2, replace=False)
        old, new = values[int(i)], values[int(j)]
    return {
        "kind": "config_change", "id": f"cfg-{hex_id(rng)}", "service": service, "ts": float(ts),
        "key": k, "old_value": old, "new_value": new, "author": str(rng.choice(AUTHORS)),
        "description": str(rng.choice(["tune", "align with prod defaults", "capacity planning",
                                        f"set {k}", "ops request", "follow-up to load test"])),
    }


def make_config_restore(rng: np.random.Generator, bad: dict[str, Any], ts: float) -> dict[str, Any]:
    return {
        "kind": "config_change", "id": f"cfg-{hex_id(rng)}", "service": bad["service"], "ts": float(ts),
        "key": bad["key"], "old_value": bad["new_value"], "new_value": bad["old_value"],
        "author": str(rng.choice(AUTHORS)), "description": f"restore {bad['key']}",
    }


def make_flag_change(rng: np.random.Generator, fleet: Fleet, service: str, ts: float,
                     flag: str | None = None, rollout: int | None = None) -> dict[str, Any]:
    spec = fleet.spec(service)
    f = flag or str(rng.choice(spec.flags))
    services = [service]
    callers = fleet.callers(service)
    if callers and rng.random() < 0.25:
        services.append(str(rng.choice(callers)))
    pct = rollout if rollout is not None else int(rng.choice([1, 5, 10, 25, 50, 100]))
    return {
        "kind": "flag_change", "id": f"flag-{hex_id(rng)}", "flag": f, "services": services, "ts": float(ts),
        "old_state": "off", "new_state": "on", "rollout_percent": pct, "author": str(rng.choice(AUTHORS)),
        "description": str(rng.choice(["ramp up", "gradual rollout", "enable for beta cohort",
                                        "experiment start", "rollout step"])),
    }


def make_flag_off(rng: np.random.Generator, bad: dict[str, Any], ts: float) -> dict[str, Any]:
    return {
        "kind": "flag_change", "id": f"flag-{hex_id(rng)}", "flag": bad["flag"], "services": list(bad["services"]),
        "ts": float(ts), "old_state": "on", "new_state": "off", "rollout_percent": 0,
        "author": str(rng.choice(AUTHORS)), "description": "turn off",
    }


def change_service(change: dict[str, Any]) -> str:
    if change["kind"] == "flag_change":
        return str(change["services"][0])
    return str(change["service"])


def random_benign_change(rng: np.random.Generator, fleet: Fleet, versions: VersionBook, service: str,
                         ts: float, weights: tuple[float, float, float] = (0.6, 0.25, 0.15)) -> dict[str, Any]:
    """A benign change of a random kind (deployment / config / flag by ``weights``)."""
    r = rng.random() * sum(weights)
    if r < weights[0]:
        return make_deployment(rng, fleet, versions, service, ts)
    if r < weights[0] + weights[1]:
        return make_config_change(rng, service, ts)
    return make_flag_change(rng, fleet, service, ts)
