"""Errors of the protocol adapters (pure; the API maps them to status codes).

- :class:`DecodeError`: the body cannot be decoded at all (bad snappy, gzip, protobuf,
  Arrow IPC or JSON): ``400``.
- :class:`UnsupportedMediaType`: a content type or encoding the receiver does not take: ``415``.
- :class:`server.api.validation.BatchError` (re-exported here): the body decoded, but
  items in it are invalid (named by index and field): ``422``; nothing is stored.
- :class:`Unauthorized`: a webhook signature or token is missing or wrong: ``401``.
"""

from __future__ import annotations

from typing import Any

from server.api.validation import BatchError

__all__ = ["BatchError", "DecodeError", "Unauthorized", "UnsupportedMediaType", "err"]


class DecodeError(ValueError):
    """The body is not a valid message of the protocol (400)."""


class UnsupportedMediaType(ValueError):
    """Content type or content encoding not accepted by this receiver (415)."""


class Unauthorized(ValueError):
    """Missing or wrong webhook signature / token (401)."""


def err(loc: list[Any], msg: str, typ: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": typ}
