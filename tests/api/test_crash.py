"""Durability: the embedded server (``rca serve``, a real process on a real data dir) is
killed with SIGKILL during ingestion, again and again (right after it answered 202, and
while a request is in flight), and restarted on the same data dir. The client retries
every batch that got no answer with the same Idempotency-Key, as a client should.

Afterwards every acknowledged point and change is stored exactly once and processed: the
level shift is detected once (one anomaly, one incident, the deployment before it ranked
as a suspect), nothing is detected twice (no late points), and whenever ``/health`` said
``pending: 0`` after a restart, what the acknowledged data implies was already there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.embedded import free_port
from tests.api.helpers import T0, series

STEP = 10.0
SHIFT_AT = 900  # the checkout latency triples from this point on
POINTS = 1500
PER_BATCH = 60  # points of every series per batch


def _workload() -> list[tuple[str, str, dict[str, Any]]]:
    """(path, idempotency key, body): metric batches with a change here and there."""
    cols = {
        ("checkout", "p95_latency_ms", None): series("checkout", "p95_latency_ms", n=POINTS, base=120.0,
                                                     shift_at=SHIFT_AT, seed=1),
        ("checkout", "qps", None): series("checkout", "qps", n=POINTS, base=50.0, seed=2),
        ("search", "p95_latency_ms", "a"): series("search", "p95_latency_ms", n=POINTS, base=80.0, seed=3),
        ("search", "p95_latency_ms", "b"): series("search", "p95_latency_ms", n=POINTS, base=90.0, seed=4),
    }
    ops: list[tuple[str, str, dict[str, Any]]] = [
        ("/ingest/topology", "topo", {"edges": [{"source": "search", "target": "checkout"}]})]
    for b in range(POINTS // PER_BATCH):
        pts = []
        for (_, _, pod), col in cols.items():
            for p in col[b * PER_BATCH:(b + 1) * PER_BATCH]:
                pts.append({**p, "labels": {"pod": pod}} if pod else p)
        ops.append(("/ingest/metrics", f"m-{b}", {"points": pts}))
        if b % 4 == 1:  # routine changes on the other service
            ops.append(("/ingest/config_changes", f"c-{b}", {"config_changes": [
                {"id": f"cfg-{b}", "service": "search", "ts": T0 + (b * PER_BATCH + 5) * STEP, "key": "k",
                 "old_value": "1", "new_value": "2"}]}))
        if (b + 1) * PER_BATCH > SHIFT_AT - 20 >= b * PER_BATCH:  # the culprit, 200 s before the shift
            ops.append(("/ingest/deployments", "d-bad", {"deployments": [
                {"id": "dep-bad", "service": "checkout", "ts": T0 + (SHIFT_AT - 20) * STEP, "version": "v2"}]}))
    return ops


class Server:
    """``rca serve`` as its own process, killed with SIGKILL and started again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        rca = str(Path(sys.executable).with_name("rca"))
        env = {**os.environ, "RCA_PIPELINE__RCA_QUIET_SECONDS": "0.05"}
        env = {k: v for k, v in env.items() if not k.startswith(("RCA_BUS__", "RCA_STORE__"))}
        self.proc = subprocess.Popen([rca, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
                                      "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=2)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, "rca serve exited while starting"
                time.sleep(0.1)
        raise TimeoutError("rca serve did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # no clean-up, no checkpoint, no commit
        self.proc.wait(30)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


@pytest.mark.slow
def test_acknowledged_batches_survive_kill_9_and_are_processed(tmp_path: Path) -> None:
    ops = _workload()
    srv = Server(tmp_path / "data")
    srv.start()
    acked: dict[str, dict[str, Any]] = {}
    after_restart: list[tuple[float, dict[str, Any], list[dict[str, Any]]]] = []
    kill_after_202 = {4, 16}  # kill as soon as these were acknowledged (their processing is queued)
    kill_in_flight = {9, 21}  # kill while the request is on its way
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            for i, (path, key, body) in enumerate(ops):
                timer = None
                if i in kill_in_flight:
                    timer = threading.Timer(0.01 + 0.02 * (i % 3), srv.kill)
                    timer.start()
                while True:
                    try:
                        r = c.post(path, json=body, headers={"Idempotency-Key": key})
                    except httpx.TransportError:  # killed: no answer, so retry with the same key
                        if timer is not None:
                            timer.join()
                            timer = None
                        if srv.proc is not None and srv.proc.poll() is None:
                            srv.kill()
                        srv.start()
                        after_restart.append(_observe(c, acked))
                        continue
                    assert r.status_code == 202, r.text
                    acked[key] = body
                    break
                if timer is not None:  # the request won the race: kill it now all the same
                    timer.join()
                    if srv.proc is not None and srv.proc.poll() is not None:
                        srv.start()
                        after_restart.append(_observe(c, acked))
                if i in kill_after_202:
                    srv.kill()
                    srv.start()
                    after_restart.append(_observe(c, acked))
            assert srv.kills >= len(kill_after_202) + 1
            _wait_idle(c)
            _check_everything(c, ops, acked, after_restart)
    finally:
        srv.stop()


def _observe(c: httpx.Client, acked: dict[str, dict[str, Any]]) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """Right after a restart: what /health says and which incidents exist."""
    max_ts = max((p["ts"] for body in acked.values() for p in body.get("points", [])), default=0.0)
    return max_ts, c.get("/health").json(), c.get("/incidents").json()


def _wait_idle(c: httpx.Client, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while c.get("/health").json()["pending"]:
        assert time.monotonic() < deadline, "pending never reached 0"
        time.sleep(0.1)


def _check_everything(c: httpx.Client, ops: list[tuple[str, str, dict[str, Any]]], acked: dict[str, dict[str, Any]],
                      after_restart: list[tuple[float, dict[str, Any], list[dict[str, Any]]]]) -> None:
    assert set(acked) == {key for _, key, _ in ops}
    # every acknowledged point stored exactly once
    stored = {(s["service"], s["metric"], tuple(sorted(s.get("labels", {}).items()))): s["points"]
              for s in c.get("/services/metrics").json()}
    assert stored == {("checkout", "p95_latency_ms", ()): POINTS, ("checkout", "qps", ()): POINTS,
                      ("search", "p95_latency_ms", (("pod", "a"),)): POINTS,
                      ("search", "p95_latency_ms", (("pod", "b"),)): POINTS}
    ts = [p["ts"] for p in c.get("/services/checkout/metrics/p95_latency_ms/series").json()["points"]]
    assert len(ts) == len(set(ts)) == POINTS
    # every acknowledged change stored once
    ids = [ch["id"] for ch in c.get("/changes", params={"limit": 1000}).json()]
    assert sorted(ids) == sorted({"dep-bad"} | {b["config_changes"][0]["id"] for k, b in acked.items()
                                                if k.startswith("c-")})
    # processed: every point detected once, the shift found once, its incident analysed
    health = c.get("/health").json()
    assert health["pending"] == 0 and health["late_points"] == 0, health
    incidents = c.get("/incidents").json()
    assert len(incidents) == 1, incidents
    inc = incidents[0]
    assert "checkout" in inc["services"]
    anomalies = c.get(f"/incidents/{inc['id']}/anomalies").json()
    assert [(a["service"], a["metric"]) for a in anomalies] == [("checkout", "p95_latency_ms")]
    suspects = c.get(f"/incidents/{inc['id']}/suspects").json()
    assert suspects and suspects[0]["change_id"] == "dep-bad", suspects[:3]
    # pending told the truth after every restart: 0 only once the acknowledged data was processed
    detected = T0 + SHIFT_AT * STEP
    for max_ts, h, incs in after_restart:
        if h["pending"] == 0 and max_ts > detected + 600:
            assert incs, f"pending 0 after a restart, yet the shift acknowledged up to {max_ts} was not detected"
