"""Turning HTTP responses and transport failures into results or :mod:`errors` (pure)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx

from workbench.client.calls import Call
from workbench.client.errors import (
    ClientError,
    NotFound,
    ProtocolError,
    RequestRejected,
    ServerError,
    ServerTimeout,
    ServerUnavailable,
    ValidationFailed,
)

T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        return response.text[:500] or None
    return body.get("detail", body) if isinstance(body, dict) else body


def _short(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def result(call: Call[T], response: httpx.Response) -> T:
    """The parsed body of a 2xx response, or the matching :class:`ClientError`."""
    code = response.status_code
    where = f"{call.method} {call.path}"
    if code in call.tolerate:
        return call.parse(None)
    if code >= 400:
        detail = _detail(response)
        msg = f"{where}: HTTP {code}: {_short(detail)}"
        if code == 404:
            raise NotFound(msg, status_code=code, detail=detail)
        if code == 422:
            raise ValidationFailed(msg, status_code=code, detail=detail)
        if code >= 500:
            raise ServerError(msg, status_code=code, detail=detail)
        raise RequestRejected(msg, status_code=code, detail=detail)
    try:
        data = response.json() if response.content else None
        return call.parse(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"{where}: unexpected response: {exc}", status_code=code) from exc


def translate(exc: httpx.HTTPError, call: Call[Any], base_url: str) -> ClientError:
    """A transport failure -> :class:`ServerUnavailable` (or :class:`ServerTimeout`)."""
    where = f"{call.method} {call.path}"
    if isinstance(exc, httpx.TimeoutException):
        return ServerTimeout(f"{where}: server at {base_url} did not answer in time ({type(exc).__name__})")
    return ServerUnavailable(f"{where}: cannot reach server at {base_url}: {exc or type(exc).__name__}")
