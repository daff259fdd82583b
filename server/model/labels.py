"""Label sets of metric series (pure).

A series is (service, metric, label set). Inside the server a label set travels as its
*canonical* JSON text: keys sorted, compact, ``None`` for the empty set, so that equal
label sets are equal strings (the detector, the store catalogue and every ingest path
key series by that string). Use :func:`canonical_labels` whenever a label set enters
the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson


def canonical_labels(labels: Mapping[str, str] | None) -> str | None:
    """The canonical text of a label set (``None`` for no labels or an empty set)."""
    if not labels:
        return None
    return orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS).decode()


def parse_labels(text: str | None) -> dict[str, str]:
    """A label set from its stored text (``{}`` for ``None`` or empty)."""
    if not text:
        return {}
    out = orjson.loads(text)
    return {str(k): str(v) for k, v in out.items()} if isinstance(out, dict) else {}


def parse_matchers(items: Iterable[str]) -> dict[str, str]:
    """``["pod=a", "region=eu"]`` -> ``{"pod": "a", "region": "eu"}``.

    Each item is ``key=value`` (split at the first ``=``; the value may be empty and may
    contain ``=``). Raises ValueError with a message naming the bad item. Two matchers
    on one key with different values can match nothing, which is allowed (no series)."""
    out: dict[str, str] = {}
    conflict = False
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label matcher {item!r} must have the form key=value (e.g. pod=a)")
        key = key.strip()
        if key in out and out[key] != value:
            conflict = True
        out[key] = value
    if conflict:
        out["\x00conflict"] = "\x00"  # no label set has this key: matches nothing
    return out


def matches(labels: Mapping[str, str], matchers: Mapping[str, str]) -> bool:
    """True when the label set has every matcher's key with that value. A matcher with an
    empty value also matches a label set without that key (as in Prometheus)."""
    for k, v in matchers.items():
        got = labels.get(k)
        if got is None:
            if v != "":
                return False
        elif got != v:
            return False
    return True
