"""The live simulator: a fleet that reports to an RCA server every ``interval`` seconds.

:class:`LiveSim` holds the fleet and its active faults; every tick it generates the
metrics and logs of all services at the current wall-clock time (plus any benign
change due) and POSTs them to the server over the HTTP contract. :func:`create_app`
wraps it in a FastAPI app with the controls:

* ``POST /inject-latency?service=&ms=&duration=`` adds ``ms`` to the service's p95,
* ``POST /inject-errors?service=&rate=&duration=`` adds ``rate`` to its error rate,
* ``POST /deploy?service=&bad=true`` posts a deployment to the server and, if bad,
  starts a fault on that service with new error logs naming a file of the diff,
* ``POST /config-change?service=&bad=true`` and ``POST /flag-change?service=&bad=true&rollout=``
  do the same with a harmful config value or a flag turned on,
* ``POST /rollback?service=`` reverts the latest faulty change of the service (a
  rollback deployment, config restore or flag turned off) and ends its fault,
* ``POST /reset`` ends every fault, ``POST /tick`` runs one tick now,
  ``POST /backfill?hours=`` posts that much history ending now,
* ``GET /health`` reports state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Query

from server.sim import changes as ch
from server.sim.fleet import Fault, Fleet, FleetSeries, generate_metrics, make_fleet, metric_points
from server.sim.logs import (
    LogSource,
    access_logs,
    background_logs,
    caller_sources,
    fault_templates,
    source_logs,
)
from server.sim.replay import CHANGE_ENDPOINTS, auth_headers


@dataclass(slots=True)
class ActiveFault:
    id: str
    fault: Fault
    kind: str  # latency / errors / both
    origin: str  # inject-latency / inject-errors / deploy
    change_id: str | None = None
    sources: list[LogSource] = field(default_factory=list)
    change: dict[str, Any] | None = None
    reverted: bool = False

    def public(self) -> dict[str, Any]:
        f = self.fault
        return {"id": self.id, "service": f.service, "kind": self.kind, "origin": self.origin,
                "change_id": self.change_id, "start": f.start, "end": f.end,
                "latency_factor": round(f.latency_factor, 3), "error_add": round(f.error_add, 4)}


@dataclass(slots=True)
class Tick:
    metrics: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    changes: list[dict[str, Any]]


class LiveSim:
    """State and behaviour of the live fleet (no web framework in here)."""

    def __init__(
        self, server_url: str | None, *, seed: int = 0, n_services: int = 10, interval: float = 10.0,
        benign_per_hour: float = 4.0, access_per_tick: int = 2, client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time, drift: float = 0.0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.fleet: Fleet = make_fleet(self.rng, n_services)
        self.interval = float(interval)
        self.benign_per_hour = benign_per_hour
        self.access_per_tick = access_per_tick
        self.server_url = server_url
        self.client = client or (httpx.AsyncClient(base_url=server_url, timeout=30.0, headers=auth_headers()) if server_url else None)
        self.clock = clock
        self.versions = ch.VersionBook()
        self.faults: list[ActiveFault] = []
        self.benign: list[Fault] = []  # small permanent shifts from benign deploys
        self.sent = {"metrics": 0, "logs": 0, "changes": 0, "edges": 0}
        self.ticks = 0
        self.errors = 0
        self.last_error: str | None = None
        self.delivering = True  # the last delivery to the server succeeded
        self.last_tick: float | None = None
        self.topology_sent = False
        self.drift = drift
        self.drift_state: dict[str, float] = {}

    # ---- generation (pure given the rng) -----------------------------------------------
    def _series(self, ts: np.ndarray) -> FleetSeries:
        return generate_metrics(self.fleet, ts, self.rng, [a.fault for a in self.faults] + self.benign,
                                drift=self.drift, drift_state=self.drift_state)

    def _logs(self, series: FleetSeries) -> list[dict[str, Any]]:
        logs = access_logs(self.rng, self.fleet, series, self.access_per_tick)
        logs += background_logs(self.rng, self.fleet, series)
        logs += source_logs(self.rng, series, [s for a in self.faults for s in a.sources])
        logs.sort(key=lambda lg: lg["ts"])
        return logs

    def _benign_changes(self, t0: float, t1: float) -> list[dict[str, Any]]:
        n = int(self.rng.poisson(self.benign_per_hour * (t1 - t0) / 3600.0))
        out = []
        for t in np.sort(self.rng.uniform(t0, t1, n)):
            svc = str(self.rng.choice(self.fleet.names))
            c = ch.random_benign_change(self.rng, self.fleet, self.versions, svc, round(float(t), 3))
            if c["kind"] == "deployment" and self.rng.random() < 0.3:
                self.benign.append(Fault(svc, c["ts"] + 30.0, latency_factor=float(self.rng.uniform(0.97, 1.04))))
            out.append(c)
        return out

    def make_tick(self, now: float) -> Tick:
        self.faults = [a for a in self.faults if a.fault.end is None or a.fault.end > now]
        prev = self.last_tick if self.last_tick is not None else now - self.interval
        changes = self._benign_changes(prev, now)
        ts = np.array([round(now, 3)])
        series = self._series(ts)
        self.last_tick = now
        self.ticks += 1
        return Tick(metrics=metric_points(series), logs=self._logs(series), changes=changes)

    def history(self, hours: float, now: float) -> Tick:
        """``hours`` of history ending at ``now`` (vectorised), for a backfill."""
        n = int(hours * 3600.0 / self.interval)
        ts = np.round(now - self.interval * np.arange(n, 0, -1), 3)
        changes = self._benign_changes(float(ts[0]) if n else now, now) if n else []
        series = self._series(ts)
        self.last_tick = now - self.interval if n else self.last_tick
        return Tick(metrics=metric_points(series), logs=self._logs(series), changes=changes)

    # ---- faults ----------------------------------------------------------------------------
    def _check_service(self, service: str) -> None:
        if service not in self.fleet.names:
            raise KeyError(service)

    def _add_fault(self, fault: Fault, kind: str, origin: str, change: dict[str, Any] | None,
                   mention: bool) -> ActiveFault:
        templates = fault_templates(self.rng, self.fleet, change, fault.service, kind, mention)
        sources = [LogSource(fault.service, templates, rate=2.5, fault=fault),
                   *caller_sources(self.fleet, fault, kind)]
        af = ActiveFault(id=f"fault-{ch.hex_id(self.rng, 6)}", fault=fault, kind=kind, origin=origin,
                         change_id=change["id"] if change else None, sources=sources, change=change)
        self.faults.append(af)
        return af

    def current_latency(self, service: str, now: float) -> float:
        s = generate_metrics(self.fleet, np.array([now]), np.random.default_rng(0),
                             [a.fault for a in self.faults] + self.benign)
        return float(s.latent_latency[service][0])

    def inject_latency(self, service: str, ms: float, duration: float) -> ActiveFault:
        self._check_service(service)
        now = self.clock()
        factor = 1.0 + ms / max(self.current_latency(service, now), 1.0)
        return self._add_fault(Fault(service, now, now + duration, latency_factor=factor), "latency",
                               "inject-latency", None, mention=False)

    def inject_errors(self, service: str, rate: float, duration: float) -> ActiveFault:
        self._check_service(service)
        now = self.clock()
        return self._add_fault(Fault(service, now, now + duration, error_add=rate), "errors",
                               "inject-errors", None, mention=False)

    def make_deploy(self, service: str, bad: bool, fault_kind: str = "both",
                    duration: float | None = None) -> tuple[dict[str, Any], Fault | None]:
        self._check_service(service)
        now = self.clock()
        change = ch.make_deployment(self.rng, self.fleet, self.versions, service, round(now, 3))
        if not bad:
            return change, None
        lat = float(self.rng.uniform(2.0, 3.5)) if fault_kind in ("latency", "both") else 1.0
        err = float(self.rng.uniform(0.05, 0.12)) if fault_kind in ("errors", "both") else 0.0
        end = now + duration if duration else None
        return change, Fault(service, now + self.interval / 2, end, latency_factor=lat, error_add=err)

    def make_change(self, kind: str, service: str, bad: bool, fault_kind: str | None = None,
                    duration: float | None = None, rollout: int = 50) -> tuple[dict[str, Any], Fault | None, str]:
        """A config or flag change now (``kind`` = config_change / flag_change); when bad,
        the fault it starts (its kind follows the config key, or ``fault_kind``)."""
        self._check_service(service)
        now = round(self.clock(), 3)
        share = 1.0
        if kind == "config_change":
            change = ch.make_config_change(self.rng, service, now, bad=bad)
            fk = fault_kind or ch.BAD_CONFIG.get(change["key"], ("", "both"))[1]
        else:
            change = ch.make_flag_change(self.rng, self.fleet, service, now, rollout=rollout)
            change["services"] = [service]
            fk = fault_kind or "both"
            share = max(0.4, rollout / 100.0)
        if not bad:
            return change, None, fk
        lat = 1.0 + (float(self.rng.uniform(2.0, 3.5)) - 1.0) * share if fk in ("latency", "both") else 1.0
        err = float(self.rng.uniform(0.05, 0.12)) * share if fk in ("errors", "both") else 0.0
        end = now + duration if duration else None
        return change, Fault(service, now + self.interval / 2, end, latency_factor=lat, error_add=err), fk

    def reset(self) -> int:
        n = len(self.faults)
        self.faults = []
        return n

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.delivering else "degraded",
            "server": self.server_url, "interval": self.interval, "services": self.fleet.names,
            "edges": self.fleet.edge_dicts(), "faults": [a.public() for a in self.faults],
            "ticks": self.ticks, "sent": dict(self.sent), "errors": self.errors, "last_error": self.last_error,
        }

    # ---- delivery ----------------------------------------------------------------------------
    async def _post(self, path: str, key: str, items: Sequence[dict[str, Any]]) -> None:
        if not items or self.client is None:
            return
        body = orjson.dumps({key: list(items)})
        resp = await self.client.post(path, content=body, headers={"content-type": "application/json"})
        for _ in range(10):  # the server is behind: wait as its Retry-After asks, a few times
            if resp.status_code not in (429, 503) or "retry-after" not in resp.headers:
                break
            await asyncio.sleep(min(float(resp.headers["retry-after"] or 1), 10.0))
            resp = await self.client.post(path, content=body, headers={"content-type": "application/json"})
        if resp.status_code >= 400:
            raise httpx.HTTPStatusError(f"POST {path} -> {resp.status_code}: {resp.text[:300]}",
                                        request=resp.request, response=resp)

    async def send_changes(self, changes: Sequence[dict[str, Any]]) -> None:
        for c in changes:
            path, key = CHANGE_ENDPOINTS[c["kind"]]
            await self._post(path, key, [{k: v for k, v in c.items() if k != "kind"}])
            self.sent["changes"] += 1

    async def send(self, tick: Tick, batch: int = 5000) -> None:
        if not self.topology_sent:
            await self._post("/ingest/topology", "edges", self.fleet.edge_dicts())
            self.sent["edges"] += len(self.fleet.edges)
            self.topology_sent = True
        await self.send_changes(tick.changes)
        for i in range(0, len(tick.logs), batch):
            await self._post("/ingest/logs", "logs", tick.logs[i:i + batch])
        self.sent["logs"] += len(tick.logs)
        for i in range(0, len(tick.metrics), batch):
            await self._post("/ingest/metrics", "points", tick.metrics[i:i + batch])
        self.sent["metrics"] += len(tick.metrics)

    async def step(self, now: float | None = None) -> Tick:
        tick = self.make_tick(self.clock() if now is None else now)
        try:
            await self.send(tick)
            self.delivering = True
        except (httpx.HTTPError, OSError) as exc:
            self.errors += 1
            self.last_error = str(exc)
            self.delivering = False
        return tick

    async def backfill(self, hours: float) -> Tick:
        tick = self.history(hours, self.clock())
        await self.send(tick)
        return tick

    async def deploy(self, service: str, bad: bool, fault_kind: str = "both",
                     duration: float | None = None) -> tuple[dict[str, Any], ActiveFault | None]:
        change, fault = self.make_deploy(service, bad, fault_kind, duration)
        await self.send_changes([change])
        af = self._add_fault(fault, fault_kind, "deploy", change, mention=True) if fault else None
        return change, af

    async def change(self, kind: str, service: str, bad: bool, fault_kind: str | None = None,
                     duration: float | None = None, rollout: int = 50,
                     ) -> tuple[dict[str, Any], ActiveFault | None]:
        change, fault, fk = self.make_change(kind, service, bad, fault_kind, duration, rollout)
        await self.send_changes([change])
        af = self._add_fault(fault, fk, kind, change, mention=True) if fault else None
        return change, af

    async def rollback(self, service: str) -> tuple[dict[str, Any], ActiveFault]:
        """Revert the latest faulty change on ``service``: post the rollback deployment,
        config restore or flag turn-off, and end its fault half an interval later."""
        self._check_service(service)
        now = round(self.clock(), 3)
        for af in reversed(self.faults):
            if af.fault.service == service and af.change is not None and not af.reverted:
                bad = af.change
                if bad["kind"] == "deployment":
                    rb = ch.make_rollback_deployment(self.rng, bad, now)
                elif bad["kind"] == "config_change":
                    rb = ch.make_config_restore(self.rng, bad, now)
                else:
                    rb = ch.make_flag_off(self.rng, bad, now)
                await self.send_changes([rb])
                af.fault.end = now + self.interval / 2
                af.reverted = True
                return rb, af
        raise LookupError(service)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            await self.step()
            delay = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


FaultKind = Annotated[str, Query(pattern="^(latency|errors|both)$")]


def create_app(sim: LiveSim, *, run_loop: bool = True, backfill_hours: float = 0.0) -> FastAPI:
    """The simulator's HTTP app; with ``run_loop`` it backfills and ticks in the background."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        if run_loop:
            async def main() -> None:
                if backfill_hours > 0:
                    try:
                        await sim.backfill(backfill_hours)
                    except (httpx.HTTPError, OSError) as exc:
                        sim.errors += 1
                        sim.last_error = f"backfill: {exc}"
                await sim.run(stop)
            task = asyncio.create_task(main())
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await sim.aclose()

    app = FastAPI(title="rca sim", description=__doc__, lifespan=lifespan)

    def unknown(service: str) -> HTTPException:
        return HTTPException(404, f"unknown service {service!r}; known: {', '.join(sim.fleet.names)}")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return sim.health()

    @app.post("/inject-latency")
    async def inject_latency(service: str, ms: Annotated[float, Query(gt=0, le=600000)],
                             duration: Annotated[float, Query(gt=0)] = 600.0) -> dict[str, Any]:
        try:
            return {"fault": sim.inject_latency(service, ms, duration).public()}
        except KeyError:
            raise unknown(service) from None

    @app.post("/inject-errors")
    async def inject_errors(service: str, rate: Annotated[float, Query(gt=0, le=1)],
                            duration: Annotated[float, Query(gt=0)] = 600.0) -> dict[str, Any]:
        try:
            return {"fault": sim.inject_errors(service, rate, duration).public()}
        except KeyError:
            raise unknown(service) from None

    @app.post("/deploy")
    async def deploy(service: str, bad: bool = False, fault: FaultKind = "both",
                     duration: Annotated[float | None, Query(gt=0)] = None) -> dict[str, Any]:
        try:
            change, af = await sim.deploy(service, bad, fault, duration)
        except KeyError:
            raise unknown(service) from None
        except (httpx.HTTPError, OSError) as exc:
            sim.errors += 1
            sim.last_error = str(exc)
            raise HTTPException(502, f"could not deliver the deployment to the server: {exc}") from exc
        body = {k: v for k, v in change.items() if k != "kind"}
        return {"deployment": body, "fault": af.public() if af else None}

    async def _change(kind: str, service: str, bad: bool, fault: str | None, duration: float | None,
                      rollout: int) -> dict[str, Any]:
        try:
            change, af = await sim.change(kind, service, bad, fault, duration, rollout)
        except KeyError:
            raise unknown(service) from None
        except (httpx.HTTPError, OSError) as exc:
            sim.errors += 1
            sim.last_error = str(exc)
            raise HTTPException(502, f"could not deliver the change to the server: {exc}") from exc
        body = {k: v for k, v in change.items() if k != "kind"}
        return {kind: body, "fault": af.public() if af else None}

    @app.post("/config-change")
    async def config_change(service: str, bad: bool = False, fault: FaultKind | None = None,
                            duration: Annotated[float | None, Query(gt=0)] = None) -> dict[str, Any]:
        return await _change("config_change", service, bad, fault, duration, 100)

    @app.post("/flag-change")
    async def flag_change(service: str, bad: bool = False, fault: FaultKind | None = None,
                          duration: Annotated[float | None, Query(gt=0)] = None,
                          rollout: Annotated[int, Query(ge=1, le=100)] = 50) -> dict[str, Any]:
        return await _change("flag_change", service, bad, fault, duration, rollout)

    @app.post("/rollback")
    async def rollback(service: str) -> dict[str, Any]:
        try:
            rb, af = await sim.rollback(service)
        except KeyError:
            raise unknown(service) from None
        except LookupError:
            raise HTTPException(404, f"no faulty change to roll back on {service!r}") from None
        except (httpx.HTTPError, OSError) as exc:
            sim.errors += 1
            sim.last_error = str(exc)
            raise HTTPException(502, f"could not deliver the rollback to the server: {exc}") from exc
        return {"change": {k: v for k, v in rb.items() if k != "kind"}, "kind": rb["kind"], "fault": af.public()}

    @app.post("/reset")
    async def reset() -> dict[str, Any]:
        return {"cleared": sim.reset()}

    @app.post("/backfill")
    async def backfill(hours: Annotated[float, Query(gt=0, le=168)] = 1.0) -> dict[str, Any]:
        try:
            t = await sim.backfill(hours)
        except (httpx.HTTPError, OSError) as exc:
            sim.errors += 1
            sim.last_error = f"backfill: {exc}"
            raise HTTPException(502, f"could not deliver the history to the server: {exc}") from exc
        return {"metrics": len(t.metrics), "logs": len(t.logs), "changes": len(t.changes)}

    @app.post("/tick")
    async def tick() -> dict[str, Any]:
        t = await sim.step()
        return {"metrics": len(t.metrics), "logs": len(t.logs), "changes": len(t.changes),
                "errors": sim.errors, "last_error": sim.last_error}

    return app
