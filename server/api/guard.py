"""Web safety at the edge: a Host allow-list (DNS rebinding), refusal of cross-origin
writes from browsers, a size limit and a deadline for every request body, and a deadline
for the request head (slow clients).

Pure ASGI middleware (no per-request task like ``BaseHTTPMiddleware``), plus a uvicorn
protocol that closes a connection whose request head does not arrive in time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.auth import LOOPBACK_HOST_HEADERS, is_loopback

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def allowed_hosts(bind_host: str, configured: list[str]) -> frozenset[str] | None:
    """The Host names to accept (None: any). Loopback binds accept loopback names only."""
    if configured:
        return None if "*" in configured else frozenset(h.lower() for h in configured)
    if is_loopback(bind_host):
        return frozenset(LOOPBACK_HOST_HEADERS | {bind_host.lower()})
    return None


def host_name(header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, hosts: frozenset[str] | None, origins: list[str],
                 max_body_bytes: int | None = None, body_timeout: float | None = None) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(host_name(h) for h in hosts)
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def _refuse(self, send: Send, status: int, msg: str) -> None:
        body = json.dumps({"detail": msg}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            await self._refuse(send, 421, f"host {host!r} is not served here (set RCA_API__ALLOWED_HOSTS to allow it)")
            return
        if scope["method"] in _UNSAFE:
            origin = headers.get("origin")
            site = headers.get("sec-fetch-site", "")
            if origin is not None and origin != "null":
                o = origin.rstrip("/").lower()
                same = host_name(urlsplit(o).netloc) == host_name(host) and urlsplit(o).port == _port(host)
                if not same and o not in self.origins:
                    await self._refuse(send, 403, f"cross-origin request from {origin} refused "
                                                  "(allow it with RCA_API__CORS_ORIGINS)")
                    return
            elif origin == "null" or site == "cross-site":
                await self._refuse(send, 403, "cross-site request refused")
                return
        size = headers.get("content-length", "")
        if self.max_body_bytes is not None and size.isdigit() and int(size) > self.max_body_bytes:
            await self._refuse(send, 413, f"request body of {size} bytes exceeds the limit of {self.max_body_bytes} bytes")
            return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        """``receive`` with the body limits of every endpoint: the whole body within
        ``body_timeout`` seconds (else 408, connection closed) and at most ``max_body_bytes``
        (else 413), however it is sent (chunked bodies have no Content-Length). Once the body
        is complete, ``receive`` is passed through (a streamed answer waits on it for the
        client's disconnect, for as long as it streams)."""
        if self.body_timeout is None and self.max_body_bytes is None:
            return receive
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout if self.body_timeout is not None else None
        state = {"done": False, "size": 0}

        async def bounded() -> Message:
            if state["done"]:
                return await receive()
            try:  # asyncio.timeout_at, not wait_for: no task per body chunk
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"request body not received within {self.body_timeout:g} s",
                                    headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                state["size"] += len(message.get("body", b""))
                if self.max_body_bytes is not None and state["size"] > self.max_body_bytes:
                    raise HTTPException(413, f"request body exceeds the limit of {self.max_body_bytes} bytes",
                                        headers={"Connection": "close"})
                state["done"] = not message.get("more_body", False)
            else:
                state["done"] = True
            return message

        return bounded


def _port(host: str) -> int | None:
    try:
        return urlsplit("//" + host).port
    except ValueError:
        return None


class _Chunks:
    """A request body as the chunks that arrived, where uvicorn keeps a ``bytearray``:
    ``+=`` keeps the chunk (uvicorn's bytearray copies it), ``bytes()`` gives a lone chunk
    back as it is (uvicorn copies the bytearray again) and joins several once. On a
    megabyte batch that is two copies of the body fewer per request."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def __iadd__(self, chunk: bytes) -> _Chunks:
        self.parts.append(bytes(chunk))  # a no-op for the bytes httptools hands over
        self.size += len(chunk)
        return self

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request head has not fully arrived ``header_timeout`` s
    after the connection opened or the request began (one byte a second holds nothing)."""

    header_timeout = 10.0
    #: body bytes a connection may hold before the app reads them (then reading pauses)
    body_high_water = 4 * 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """uvicorn's ``on_body`` (same checks and wake-up), with the body kept as chunks
        and reading paused only past ``body_high_water`` bytes not yet read by the app:
        uvicorn pauses past 64 KiB, which on a 1 MB batch means a dozen pauses, resumes
        (two epoll calls each) and wake-ups per request, about a tenth of the event
        loop's CPU on 10k-point batches. What a connection holds stays bounded."""
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        if not isinstance(cycle.body, _Chunks):  # new, or reset to a bytearray by each receive()
            held = bytes(cycle.body)
            cycle.body = _Chunks()  # type: ignore[assignment]
            if held:
                cycle.body += held
        cycle.body += body
        if len(cycle.body) > self.body_high_water:
            self.flow.pause_reading()
        cycle.message_event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_options(header_timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` shared by every entry point."""
    proto = type("RcaHttpProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
    return {"http": proto, "timeout_keep_alive": 5, "h11_max_incomplete_event_size": 64 * 1024}
