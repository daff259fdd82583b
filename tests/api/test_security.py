"""Keys and roles, hostile requests and slow clients against a real embedded server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.embedded import EmbeddedServer, free_port
from tests.api.helpers import T0, series, wait_idle

RCA = [sys.executable, "-m", "server.cli"]


def rca(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RCA, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[2])


def create_key(data_dir: Path, name: str, *roles: str) -> str:
    out = rca("keys", "create", "--name", name, *[a for r in roles for a in ("--role", r)], "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, dict[str, str]]]:
    """A server whose data dir already holds one key per role (created with `rca keys`)."""
    data = tmp_path / "data"
    keys = {role: create_key(data, f"{role}-user", role) for role in ("ingest", "read", "label", "admin")}
    with EmbeddedServer(data_dir=data) as srv:
        yield srv, keys


def test_open_on_loopback_without_keys(http: httpx.Client) -> None:
    assert http.post("/ingest/metrics", json={"points": series("a", "m", n=5, base=1.0)}).status_code == 202
    assert http.get("/incidents").status_code == 200
    assert http.get("/admin/keys").json() == []


def test_each_role_allowed_and_denied(keyed: tuple[EmbeddedServer, dict[str, str]]) -> None:
    srv, keys = keyed
    pts = {"points": series("checkout", "p95_latency_ms", n=40, base=100.0)}
    dep = {"deployments": [{"id": "dep-1", "service": "checkout", "ts": T0 + 100, "version": "v2"}]}
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        # no key, a wrong key, a revoked-looking key: 401 with a hint
        r = c.get("/incidents")
        assert r.status_code == 401 and "rca keys create" in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/incidents", headers=bearer("rca_deadbeef_nope")).status_code == 401
        assert c.post("/ingest/metrics", json=pts).status_code == 401
        assert c.get("/health").status_code == 200  # liveness stays open
        # (endpoint, method, body) -> roles that may call it
        matrix: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
            ("/ingest/metrics", "POST", pts, {"ingest", "admin"}),
            ("/ingest/deployments", "POST", dep, {"ingest", "admin"}),
            ("/incidents", "GET", None, {"read", "label", "admin"}),
            ("/services/metrics", "GET", None, {"read", "label", "admin"}),
            ("/changes", "GET", None, {"read", "label", "admin"}),
            ("/export", "GET", None, {"read", "label", "admin"}),
            ("/metrics", "GET", None, {"read", "label", "admin"}),
            ("/admin/keys", "GET", None, {"admin"}),
            ("/audit", "GET", None, {"admin"}),
        ]
        for path, method, body, allowed in matrix:
            for role, key in keys.items():
                r = c.request(method, path, json=body, headers=bearer(key))
                if role in allowed:
                    assert r.status_code < 400, (path, role, r.status_code, r.text)
                else:
                    assert r.status_code == 403, (path, role, r.status_code)
                    assert "lacks the '" in r.json()["detail"]
        with httpx.Client(base_url=srv.url, timeout=30, headers=bearer(keys["read"])) as reader:
            wait_idle(reader)
        # labelling and reruns need the label role; the label reaches the audit trail with its author
        inc = "inc-404"
        for role in ("ingest", "read"):
            r = c.post(f"/incidents/{inc}/label", json={"change_id": "dep-1", "verdict": "cause"},
                       headers=bearer(keys[role]))
            assert r.status_code == 403, role
            assert c.post(f"/incidents/{inc}/rerun_rca", headers=bearer(keys[role])).status_code == 403
        # the label role passes auth (404: no such incident, which proves the check ran first)
        r = c.post(f"/incidents/{inc}/label", json={"change_id": "dep-1", "verdict": "cause"},
                   headers=bearer(keys["label"]))
        assert r.status_code == 404


def _seed_incident(c: httpx.Client) -> tuple[str, str]:
    """A real incident (a level shift after a deploy); returns (incident id, change id)."""
    from tests.api.test_pipeline import _changes, _history

    _changes(c)
    assert c.post("/ingest/metrics", json={"points": _history()}).status_code == 202
    wait_idle(c)
    return c.get("/incidents").json()[0]["id"], "dep-bad"


def test_audit_trail_and_revocation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin = create_key(data, "root", "admin")
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=30,
                                                           headers=bearer(admin)) as c:
        r = c.post("/admin/keys", json={"name": "alice", "roles": ["label"]})
        assert r.status_code == 201
        alice, alice_id = r.json()["key"], r.json()["id"]
        assert alice.startswith(alice_id + "_")
        listed = c.get("/admin/keys").json()
        assert {k["name"] for k in listed} == {"root", "alice"} and all("key" not in k for k in listed)
        inc_id, change_id = _seed_incident(c)
        with httpx.Client(base_url=srv.url, timeout=30, headers=bearer(alice)) as a:
            assert a.post(f"/incidents/{inc_id}/label",
                          json={"change_id": change_id, "verdict": "cause", "author": "alice"}).status_code == 200
            assert a.post(f"/incidents/{inc_id}/rerun_rca").status_code == 202
            trail = c.get("/audit").json()
            actions = [(e["action"], e["actor"]) for e in trail]
            assert ("label", f"alice ({alice_id})") in actions
            assert ("rerun_rca", f"alice ({alice_id})") in actions
            assert ("key_create", f"root ({admin.split('_')[0]}_{admin.split('_')[1]})") in actions
            assert c.get("/audit", params={"action": "label"}).json()[0]["detail"]["change_id"] == change_id
            assert c.delete(f"/admin/keys/{alice_id}").json()["revoked_at"] is not None
            assert a.get("/incidents").status_code == 401  # revoked at once in this process
            assert c.delete(f"/admin/keys/{alice_id}").status_code == 404


def test_keys_cli_list_and_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "runs open" in rca("keys", "list", "--data-dir", str(data)).stdout
    key = create_key(data, "ci", "ingest", "read")
    key_id = "_".join(key.split("_")[:2])
    listed = rca("keys", "list", "--data-dir", str(data)).stdout
    assert key_id in listed and "ingest,read" in listed and key not in listed
    assert rca("keys", "revoke", key_id, "--data-dir", str(data)).returncode == 0
    again = rca("keys", "revoke", key_id, "--data-dir", str(data))
    assert again.returncode == 1 and "no active key" in again.stderr and "Traceback" not in again.stderr
    bad = rca("keys", "create", "--name", "x", "--role", "root", "--data-dir", str(data))
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_web_safety(server: EmbeddedServer, http: httpx.Client) -> None:
    body = b'{"deployments": [{"id": "dep-x", "service": "a", "ts": 1764460800, "version": "v1"}]}'
    # a page on another site posting text/plain (no preflight) is refused twice over
    r = http.post("/ingest/deployments", content=body,
                  headers={"content-type": "text/plain", "origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = http.post("/ingest/deployments", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = http.post("/ingest/deployments", content=body, headers={"sec-fetch-site": "cross-site",
                                                                "content-type": "application/json"})
    assert r.status_code == 403
    assert http.get("/changes").json() == []  # nothing stored
    # DNS rebinding: a foreign Host name is not served on a loopback bind
    r = http.get("/incidents", headers={"host": "attacker.example:8000"})
    assert r.status_code == 421
    # command-line clients: no content type, or curl -d's form type without an Origin, still work
    assert http.post("/ingest/deployments", content=body, headers={"content-type": ""}).status_code == 202
    same = http.post("/ingest/deployments", content=body.replace(b"dep-x", b"dep-y"),
                     headers={"content-type": "application/x-www-form-urlencoded"})
    assert same.status_code == 202
    own = http.post("/ingest/deployments", content=body.replace(b"dep-x", b"dep-z"),
                    headers={"content-type": "application/json", "origin": server.url})
    assert own.status_code == 202
    assert {c["id"] for c in http.get("/changes").json()} == {"dep-x", "dep-y", "dep-z"}


def test_cors_origin_allowed_when_configured(tmp_path: Path) -> None:
    web = "http://127.0.0.1:3999"
    with EmbeddedServer(data_dir=tmp_path / "d", api={"cors_origins": [web]}) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        pre = c.options("/ingest/topology", headers={"origin": web, "access-control-request-method": "POST"})
        assert pre.headers["access-control-allow-origin"] == web
        r = c.post("/ingest/topology", json={"edges": [{"source": "a", "target": "b"}]}, headers={"origin": web})
        assert r.status_code == 202 and r.headers["access-control-allow-origin"] == web
        assert c.post("/ingest/topology", json={"edges": []}, headers={"origin": "http://other"}).status_code == 403


def test_idempotency_key_stores_a_retried_batch_once(http: httpx.Client) -> None:
    pts = {"points": series("a", "m", n=100, base=1.0)}
    first = http.post("/ingest/metrics", json=pts, headers={"Idempotency-Key": "batch-1"})
    again = http.post("/ingest/metrics", json=pts, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    wait_idle(http)
    assert http.get("/services/metrics").json()[0]["points"] == 100
    other = http.post("/ingest/metrics", json={"points": series("a", "m", n=10, base=1.0, t0=T0 + 5000)},
                      headers={"Idempotency-Key": "batch-2"})
    assert other.status_code == 202
    wait_idle(http)
    assert http.get("/services/metrics").json()[0]["points"] == 110


def test_backpressure_answers_503_with_retry_after(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path / "d", api={"max_pending_messages": 1}) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        big = [p for s in range(200) for p in series(f"s{s}", "m", n=1000, base=1.0, seed=s)]
        assert c.post("/ingest/metrics", json={"points": big}).status_code == 202
        r = c.post("/ingest/metrics", json={"points": series("late", "m", n=10, base=1.0)})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "nothing of this batch was stored" in r.json()["detail"]
        wait_idle(c, timeout=300)
        assert {s["service"] for s in c.get("/services/metrics").json()} == {f"s{s}" for s in range(200)}
        # the typed client waits out the 503 as Retry-After asks and then succeeds
        from workbench.client import RcaClient

        assert c.post("/ingest/metrics", json={"points": big[:200_000]}).status_code == 202
        with RcaClient(srv.url, timeout=60) as client:
            assert client.ingest_metrics(series("late", "m", n=10, base=1.0)) == 10


def _raw(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path / "d", api={"header_timeout_seconds": 1.0,
                                                      "body_timeout_seconds": 1.0}) as srv:
        # a request head trickling in byte by byte is closed after the header deadline
        s = _raw(srv.port)
        t0 = time.monotonic()
        closed = False
        for ch in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 30:
            try:
                s.sendall(bytes([ch]))
                time.sleep(0.2)
            except OSError:
                closed = True
                break
        if not closed:
            s.settimeout(2)
            closed = s.recv(1024) == b""
        assert closed and time.monotonic() - t0 < 8
        s.close()
        # a body that never completes gets 408 after the body deadline, nothing stored
        s = _raw(srv.port)
        s.sendall(b"POST /ingest/topology HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"edges\": [")
        s.settimeout(10)
        head = s.recv(4096)
        assert b" 408 " in head.split(b"\r\n")[0]
        s.close()
        with httpx.Client(base_url=srv.url) as c:
            assert c.get("/health").status_code == 200


def _response(s: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += s.recv(65536)
    return head.split(b"\r\n")[0], rest


def test_a_body_sent_in_pieces_arrives_whole(tmp_path: Path) -> None:
    """The real server (uvicorn with this project's protocol class, which keeps a body's
    chunks instead of copying them) takes a body that trickles in, with a length or
    chunked, as one batch, byte for byte."""
    import orjson

    pts = [p for s in range(4) for p in series(f"piece{s}", "m", n=500, base=1.0, seed=s)]
    body = orjson.dumps({"points": pts})
    pieces = [body[i:i + len(body) // 5 + 1] for i in range(0, len(body), len(body) // 5 + 1)]
    with EmbeddedServer(data_dir=tmp_path / "d") as srv:
        for chunked in (False, True):
            s = _raw(srv.port)
            framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
            s.sendall(b"POST /ingest/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      + framing + b"\r\n\r\n")
            for piece in pieces:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                time.sleep(0.05)  # each piece reaches the server apart
            if chunked:
                s.sendall(b"0\r\n\r\n")
            status, answer = _response(s)
            s.close()
            assert b" 202 " in status + b" " and orjson.loads(answer) == {"accepted": len(pts)}
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            wait_idle(c)
            got = {m["service"]: m["points"] for m in c.get("/services/metrics").json()}
        assert got == {f"piece{s}": 1000 for s in range(4)}  # both requests, every point


def test_start_up_failures_are_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "d"
    port = free_port()
    r = rca("serve", "--host", "0.0.0.0", "--port", str(port), "--data-dir", str(data))
    assert r.returncode == 1 and "refusing to listen on 0.0.0.0 without API keys" in r.stderr
    assert "Traceback" not in r.stderr
    r = rca("serve", "--data-dir", str(data), env={"RCA_PORT": "eighty"})
    assert r.returncode == 2 and "bad setting RCA_PORT" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = rca("serve", "--port", str(busy.getsockname()[1]), "--data-dir", str(data))
        assert r.returncode == 1 and "already in use" in r.stderr and "Traceback" not in r.stderr
    other = tmp_path / "other"
    other.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ok', flush=True); time.sleep(120)", str(other / "rca.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        r = rca("serve", "--port", str(free_port()), "--data-dir", str(other))
        assert r.returncode == 1 and "in use by another process" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_hostile_items_are_rejected_and_nothing_is_stored(http: httpx.Client) -> None:
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(300):
        cur["a"] = {}
        cur = cur["a"]
    good = {"service": "a", "ts": T0, "level": "ERROR", "message": "boom"}
    cases: list[tuple[str, dict[str, Any], list[Any]]] = [
        ("/ingest/logs", {"logs": [good, {**good, "attributes": deep}]}, ["body", "logs", 1, "attributes"]),
        ("/ingest/logs", {"logs": [good, {**good, "message": "x" * 70_000}]}, ["body", "logs", 1, "message"]),
        ("/ingest/metrics", {"points": [{"service": "a", "metric": "m", "ts": T0, "value": 1.0,
                                         "labels": {f"k{i}": "v" for i in range(100)}}]},
         ["body", "points", 0, "labels"]),
        ("/ingest/metrics", {"points": [{"service": "a", "metric": "m", "ts": T0, "value": 1.0,
                                         "labels": {"pod": "p" * 5000}}]}, ["body", "points", 0, "labels"]),
        ("/ingest/deployments", {"deployments": [{"service": "a", "ts": T0, "version": "v1",
                                                  "description": "d" * 20_000}]},
         ["body", "deployments", 0, "description"]),
        ("/ingest/metrics", {"points": [{"service": "a", "metric": "m", "ts": T0, "value": float("nan")}]}, []),
    ]
    for path, body, loc in cases:
        if loc:
            r = http.post(path, json=body)
            assert r.status_code == 422, (path, r.text[:200])
            assert any(e["loc"][:len(loc)] == loc for e in r.json()["detail"]), r.json()
        else:  # NaN is not JSON; sent as the literal a careless client writes
            r = http.post(path, content=b'{"points": [{"service": "a", "metric": "m", "ts": 1764460800, '
                                         b'"value": NaN}]}', headers={"content-type": "application/json"})
            assert r.status_code == 422
    bad_line = b'{"service": "a", "metric": "m", "ts": 1764460800, "value": 1}\n{"service": oops}\n'
    r = http.post("/ingest/metrics", content=bad_line, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1]
    wait_idle(http)
    assert http.get("/services/metrics").json() == []
    assert http.get("/changes").json() == []
    for path in ("/health", "/services", "/incidents", "/changes", "/services/metrics"):
        assert http.get(path).status_code == 200
