"""Timestamp parsing/formatting shared by API, CLI and clients (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

# Event timestamps accepted by ingest: [TS_MIN, TS_MAX) epoch seconds, 1970-01-01 up to
# (not including) 2200-01-01 UTC. Anything outside is rejected (422) so that no stored
# timestamp can break a later read, and epoch milliseconds (a common mistake) are named.
TS_MIN = 0.0
TS_MAX = 7_258_118_400.0
TS_RANGE_TEXT = "1970-01-01T00:00:00Z (epoch 0) up to 2200-01-01T00:00:00Z (epoch 7258118400)"
_UNITS = ((1e3, "milliseconds"), (1e6, "microseconds"), (1e9, "nanoseconds"))


def ts_range_error(v: float) -> str | None:
    """Why epoch seconds ``v`` is not an acceptable event timestamp (None if it is)."""
    if v != v or v in (float("inf"), float("-inf")):
        return "timestamp must be finite"
    if TS_MIN <= v < TS_MAX:
        return None
    if v >= TS_MAX:
        for factor, unit in _UNITS:
            if 1e8 <= v / factor < TS_MAX:  # 1973..2200 once divided: a time in the wrong unit
                return (f"timestamp {v:.15g} looks like epoch {unit}; send epoch seconds "
                        f"({v / factor:.15g}) or an ISO 8601 string (accepted range: {TS_RANGE_TEXT})")
    return f"timestamp {v:.6g} is outside the accepted range {TS_RANGE_TEXT}"


def parse_event_ts(value: object) -> float:
    """:func:`parse_ts` for ingested event times: also refuses times outside the accepted
    range (``ValueError`` naming the reason, e.g. epoch milliseconds)."""
    v = parse_ts(value)
    msg = ts_range_error(v)
    if msg is not None:
        raise ValueError(msg)
    return v


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
    try:
        dt = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        # only data stored before timestamps were range-checked can get here: answer with
        # the nearest representable time instead of failing the whole response
        dt = datetime.max.replace(tzinfo=UTC) if ts > 0 else datetime.min.replace(tzinfo=UTC)
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")
