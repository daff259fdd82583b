"""Timestamp parsing/formatting shared by API, CLI and clients (pure)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_ts(value: object) -> float:
    """Parse an ISO 8601 string with a zone, or an epoch in seconds, to epoch seconds.

    Raises ValueError with a human message on anything else.
    """
    if isinstance(value, bool):
        raise ValueError("timestamp must be an ISO 8601 string with a zone or epoch seconds")
    if isinstance(value, int | float):
        v = float(value)
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("timestamp must be finite")
        return v
    if isinstance(value, str):
        s = value.strip()
        if not s:
            raise ValueError("timestamp is empty")
        try:
            return float(s)
        except ValueError:
            pass
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError as exc:
            raise ValueError(f"invalid ISO 8601 timestamp: {value!r}") from exc
        if dt.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone (add Z or +00:00)")
        return dt.timestamp()
    raise ValueError("timestamp must be an ISO 8601 string with a zone or epoch seconds")


def iso(ts: float | None) -> str | None:
    """Epoch seconds to an ISO 8601 UTC string (millisecond precision when needed)."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, tz=UTC)
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")
