"""Fast path for remote-write 1.0: one compiled pass over the protobuf wire format.

The protobuf library's Python objects cost microseconds per field access, which caps a
request of one-sample series (what Prometheus sends) near 50k samples/s. This scanner
walks a ``prometheus.WriteRequest`` once and returns, per time series, the byte span of
its labels and, per sample, its series, timestamp and value, as NumPy arrays. The label
spans are turned into our series keys through a cache keyed by the raw bytes (Prometheus
sends the same series in every request), so the per-series Python work is one dict
lookup. Anything unusual (labels interleaved with samples, a malformed message) returns a
status that sends the request to the protobuf-library decoder, which stays the reference:
tests check that both give the same table.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from server.ingest.json_scan import _word
from server.ingest.unchecked import load

OK, FALLBACK, MALFORMED, GROW = 0, 1, 2, 3
#: the first scan's room, in bytes of request per series (a Prometheus series entry takes
#: far more); a request of smaller entries is scanned again with room for any (GROW).
#: Room for the worst case (one series per two bytes) costs more than the scan itself.
BYTES_PER_SERIES = 32


@njit(cache=True, nogil=True)
def _varint(buf: np.ndarray, pos: int, end: int) -> tuple[int, int]:  # pragma: no cover - compiled
    result = np.uint64(0)
    shift = np.uint64(0)
    while pos < end:
        b = np.uint64(load(buf, pos))
        pos += 1
        result |= (b & np.uint64(0x7F)) << shift
        if b < np.uint64(0x80):
            return np.int64(result), pos  # type: ignore[return-value]
        shift += np.uint64(7)
        if shift >= np.uint64(64):
            return 0, -1
    return 0, -1


@njit(cache=True, nogil=True)
def _skip(buf: np.ndarray, pos: int, end: int, wt: int) -> int:  # pragma: no cover - compiled
    if wt == 0:
        _, pos = _varint(buf, pos, end)
        return pos
    if wt == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wt == 5:
        return pos + 4 if pos + 4 <= end else -1
    if wt == 2:
        ln, pos = _varint(buf, pos, end)
        if pos < 0 or ln < 0 or pos + ln > end:
            return -1
        return pos + ln
    return -1


@njit(cache=True, nogil=True, inline="always")
def _double_at(buf: np.ndarray, q: int, bits: np.ndarray, as_double: np.ndarray) -> float:  # pragma: no cover
    """The little-endian double at byte ``q`` (``as_double``: a float64 view of ``bits``,
    one uint64: no array per value)."""
    word = np.uint64(0)
    for y in range(8):
        word |= np.uint64(load(buf, q + y)) << np.uint64(8 * y)
    bits[0] = word
    return as_double[0]  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)
def scan_v1(buf: np.ndarray, room: int = 0):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """-> (status, lab_start, lab_end, n_series, sample_series, sample_ts_ms, sample_value, n_samples,
    fields: per sample the offsets of its value and of its timestamp's first and end byte;
    ``fields[0, 0] == -1`` when some sample is not exactly one value and one timestamp).
    ``room``: series and samples to make room for (0 or more than can fit: as many as can);
    status GROW when the request has more."""
    end = buf.shape[0]
    full = end // 2 + 1
    cap = full if room <= 0 or room > full else room
    lab_start = np.empty(cap, np.int64)
    lab_end = np.empty(cap, np.int64)
    s_series = np.empty(cap, np.int32)
    s_ts = np.empty(cap, np.int64)
    s_val = np.empty(cap, np.float64)
    # where each sample's value (8 bytes) and timestamp (varint) sit: [0] value, [1] ts
    # start, [2] ts end; [0, 0] = -1 when some sample is not one value and one timestamp
    fields = np.empty((cap, 3), np.int64)
    regular = True
    n_series = 0
    n_samples = 0
    bits = np.empty(1, np.uint64)  # a sample's value: its 8 bytes, read as a double through this view
    as_double = bits.view(np.float64)
    pos = 0
    while pos < end:
        key, pos = _varint(buf, pos, end)
        if pos < 0:
            return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
        field = key >> 3
        wt = key & 7
        if field != 1 or wt != 2:
            pos = _skip(buf, pos, end, wt)
            if pos < 0:
                return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
            continue
        ln, pos = _varint(buf, pos, end)
        if pos < 0 or ln < 0 or pos + ln > end:
            return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
        ts_end = pos + ln
        ls = -1
        le = -1
        p = pos
        while p < ts_end:
            field_start = p
            k, p = _varint(buf, p, ts_end)
            if p < 0:
                return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
            f = k >> 3
            w = k & 7
            if w != 2:
                p = _skip(buf, p, ts_end, w)
                if p < 0:
                    return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                continue
            sub, p = _varint(buf, p, ts_end)
            if p < 0 or sub < 0 or p + sub > ts_end:
                return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
            fe = p + sub
            if f == 1:
                if ls == -1:
                    ls = field_start
                elif le != field_start:
                    return FALLBACK, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                le = fe
            elif f == 2:
                value = 0.0
                tsv = 0
                v_at = -1
                t_at = -1
                t_end = -1
                q = p
                while q < fe:
                    kk, q = _varint(buf, q, fe)
                    if q < 0:
                        return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                    ff = kk >> 3
                    ww = kk & 7
                    if ff == 1 and ww == 1:
                        if q + 8 > fe:
                            return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                        value = _double_at(buf, q, bits, as_double)
                        regular = regular and v_at < 0
                        v_at = q
                        q += 8
                    elif ff == 2 and ww == 0:
                        regular = regular and t_at < 0
                        t_at = q
                        tsv, q = _varint(buf, q, fe)
                        if q < 0:
                            return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                        t_end = q
                    else:
                        q = _skip(buf, q, fe, ww)
                        if q < 0:
                            return MALFORMED, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                if n_samples >= cap:
                    return (FALLBACK if cap == full else GROW), lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields
                s_series[n_samples] = n_series
                s_ts[n_samples] = tsv
                s_val[n_samples] = value
                regular = regular and v_at >= 0 and t_at >= 0
                fields[n_samples, 0] = v_at
                fields[n_samples, 1] = t_at
                fields[n_samples, 2] = t_end
                n_samples += 1
            p = fe
        if ls == -1:
            ls = pos
            le = pos
        if n_series >= cap:
            return GROW, lab_start, lab_end, 0, s_series, s_ts, s_val, 0, fields  # (never at full room)
        lab_start[n_series] = ls
        lab_end[n_series] = le
        n_series += 1
        pos = ts_end
    if not regular and n_samples:
        fields[0, 0] = -1
    return OK, lab_start, lab_end, n_series, s_series, s_ts, s_val, n_samples, fields


@njit(cache=True, nogil=True)
def _equal_range(b: np.ndarray, pb: np.ndarray, w: np.ndarray, pw: np.ndarray, y: int, e: int) -> bool:  # pragma: no cover
    """Whether ``b[y:e] == pb[y:e]``, eight bytes at a time (``w``, ``pw``: the words of
    ``b`` and ``pb``, read at any byte offset by ``json_scan._word``)."""
    while y + 8 <= e and (y >> 3) + 1 < len(w):  # (_word may read the word after y's)
        if _word(w, y) != _word(pw, y):
            return False
        y += 8
    while y < e:
        if load(b, y) != load(pb, y):
            return False
        y += 1
    return True


@njit(cache=True, nogil=True)
def _all_equal(b: np.ndarray, pb: np.ndarray) -> bool:  # pragma: no cover
    """Whether two byte arrays of the same length are equal: differences OR-ed word by
    word without an early exit (LLVM vectorises the loop), then the last bytes."""
    n8 = len(b) // 8
    w = b[: n8 * 8].view(np.uint64)
    pw = pb[: n8 * 8].view(np.uint64)
    acc = np.uint64(0)
    for i in range(n8):
        acc |= load(w, i) ^ load(pw, i)
    for y in range(n8 * 8, len(b)):
        acc |= np.uint64(load(b, y) ^ load(pb, y))
    return acc == 0


@njit(cache=True, nogil=True)
def same_but_samples(b: np.ndarray, pb: np.ndarray, fields: np.ndarray):  # type: ignore[no-untyped-def]  # pragma: no cover
    """For a request of the same length as the previous one (``pb``, whose samples' fields
    sit at ``fields``, from :func:`scan_v1`): whether every byte but the samples' values
    and timestamps is the same (then the message is the same but for those: the same
    series, in the same order, each timestamp a varint of the same length, which is
    checked), and the samples' timestamps (ms) and values read at those places.

    ``pb`` is written: its sample fields take ``b``'s bytes, and then the two must be equal
    everywhere (one vectorised compare of the whole request instead of one per gap between
    fields). Only those fields change, so ``pb`` stays the same message but for its samples'
    values and timestamps."""
    n = fields.shape[0]
    ts = np.empty(n, np.int64)
    val = np.empty(n, np.float64)
    if len(b) != len(pb):
        return False, ts, val
    bits = np.empty(1, np.uint64)
    as_double = bits.view(np.float64)
    size = len(b)
    pos = 0
    for k in range(n):
        v = fields[k, 0]
        t = fields[k, 1]
        e = fields[k, 2]
        lo = min(v, t)
        if lo < pos or v + 8 > size or e > size or t >= e or (v < t < v + 8) or (t < v < e):
            return False, ts, val  # (never for the fields scan_v1 found)
        pos = max(v + 8, e)
        val[k] = _double_at(b, v, bits, as_double)
        r, q = _varint(b, t, e)
        if q != e:  # not a varint of exactly e - t bytes
            return False, ts, val
        ts[k] = r
        for y in range(v, v + 8):
            pb[y] = load(b, y)
        for y in range(t, e):
            pb[y] = load(b, y)
    return _all_equal(b, pb), ts, val


def warm_up() -> None:
    """Compile (or load from Numba's cache) the scan and the compare before a request needs them."""
    scan_v1(np.zeros(0, np.uint8), 1)
    same_but_samples(np.zeros(8, np.uint8), np.zeros(8, np.uint8), np.zeros((0, 3), np.int64))


@njit(cache=True, nogil=True)
def same_spans(b: np.ndarray, pb: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:  # pragma: no cover
    """Whether the spans ``[starts[q], ends[q])`` hold the same bytes in ``b`` as in ``pb``
    (the previous request, its series laid out at the same places: each scrape sends the
    same). Compared eight bytes at a time where the offsets allow."""
    n8 = min(len(b), len(pb)) // 8
    w = b[: n8 * 8].view(np.uint64)
    pw = pb[: n8 * 8].view(np.uint64)
    for q in range(len(starts)):
        e = ends[q]
        if e > len(b) or e > len(pb) or not _equal_range(b, pb, w, pw, starts[q], e):
            return False
    return True
