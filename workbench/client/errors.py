"""Errors raised by :mod:`workbench.client` (one hierarchy for every front end)."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base class: the request did not produce the expected response.

    ``status_code`` is the HTTP status when the server answered, else ``None``;
    ``detail`` is the ``detail`` field of the server's JSON error body when present.
    """

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class ServerUnavailable(ClientError):
    """The server could not be reached or did not answer in time."""


class ServerTimeout(ServerUnavailable):
    """The server accepted the connection but did not answer within the timeout."""


class NotFound(ClientError):
    """404: the incident / series / endpoint does not exist."""


class ValidationFailed(ClientError):
    """422: the server rejected the request body; ``detail`` names the bad items and fields."""


class RequestRejected(ClientError):
    """Another 4xx (400, 409, 413 ...)."""


class ServerError(ClientError):
    """5xx: the server failed while handling the request."""


class ProtocolError(ClientError):
    """The server answered 2xx with a body that does not match the contract."""
