"""Fast path for JSON metric batches: one compiled pass over the bytes (like
:mod:`server.ingest.prom_scan` for remote-write).

The scan walks ``{"points": [...]}``, a bare array or NDJSON, and for each point object
(keys in any order, unknown keys skipped) keeps only byte spans and numbers: the spans of
``service``, ``metric`` and the raw ``labels`` object, ``ts`` and ``value``. Points are
grouped by the bytes of their (service, metric, labels) in a hash table as they are read,
so Python sees each series once, never each point. A number is converted in the scan when
that is exact (at most 15 significant digits here, with a power of ten up to 1e22: one
correctly rounded operation); any other number is handed, as text, to Arrow's parser.
Anything unusual (an escape in a name, a missing field, a string timestamp, invalid JSON)
returns a status that sends the batch to the decoders that report what is wrong.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from server.ingest.unchecked import load

OK, FALLBACK = 0, 1
_POW10 = np.array([10.0 ** i for i in range(23)])
_MAX_EXACT = 2 ** 53


@njit(cache=True, nogil=True)
def _ws(b: np.ndarray, i: int, n: int) -> int:  # pragma: no cover - compiled
    while i < n and (load(b, i) == 32 or load(b, i) == 10 or load(b, i) == 13 or load(b, i) == 9):
        i += 1
    return i


@njit(cache=True, nogil=True)
def _string_end(b: np.ndarray, i: int, n: int) -> tuple[int, bool]:  # pragma: no cover - compiled
    """b[i] is the opening quote: (index after the closing quote, saw an escape); -1: unterminated."""
    i += 1
    esc = False
    while i < n:
        c = load(b, i)
        if c == 92:  # backslash
            esc = True
            i += 2
            continue
        if c == 34:
            return i + 1, esc
        if c < 32:
            return -1, esc
        i += 1
    return -1, esc


@njit(cache=True, nogil=True)
def _literal(b: np.ndarray, i: int, n: int) -> int:  # pragma: no cover - compiled
    """Index after ``true``, ``false`` or ``null`` at b[i]; -1 otherwise."""
    if i + 4 <= n and ((load(b, i) == 116 and load(b, i + 1) == 114 and load(b, i + 2) == 117 and load(b, i + 3) == 101)
                       or (load(b, i) == 110 and load(b, i + 1) == 117 and load(b, i + 2) == 108 and load(b, i + 3) == 108)):
        return i + 4
    if i + 5 <= n and load(b, i) == 102 and load(b, i + 1) == 97 and load(b, i + 2) == 108 and load(b, i + 3) == 115 and load(b, i + 4) == 101:
        return i + 5
    return -1


@njit(cache=True, nogil=True)
def _skip(b: np.ndarray, i: int, n: int) -> int:  # pragma: no cover - compiled
    """Index after the JSON value starting at b[i]; -1 if malformed. Objects and arrays
    are skipped by bracket depth (their inner syntax is left to the reference decoder
    only when they are the labels, which are parsed on their own)."""
    if i >= n:
        return -1
    c = load(b, i)
    if c == 34:
        return _string_end(b, i, n)[0]
    if c == 123 or c == 91:
        depth = 0
        while i < n:
            c = load(b, i)
            if c == 34:
                i = _string_end(b, i, n)[0]
                if i < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return -1
    if c == 116 or c == 102 or c == 110:
        return _literal(b, i, n)
    return _number(b, i, n)[0]


@njit(cache=True, nogil=True)
def _number(b: np.ndarray, i: int, n: int) -> tuple[int, float, bool]:  # pragma: no cover - compiled
    """(index after the number, its value, exact): not exact -> parse the text elsewhere;
    index -1: not a JSON number."""
    neg = False
    if i < n and load(b, i) == 45:
        neg = True
        i += 1
    if i >= n or not (48 <= load(b, i) <= 57):
        return -1, 0.0, False
    mant = np.uint64(0)
    sig = 0  # significant digits kept in mant
    exp10 = 0
    truncated = False
    if load(b, i) == 48:
        i += 1
    else:
        while i < n and 48 <= load(b, i) <= 57:
            if sig < 19:
                mant = mant * np.uint64(10) + np.uint64(load(b, i) - 48)
                sig += 1
            else:
                exp10 += 1
                truncated = truncated or load(b, i) != 48
            i += 1
    if i < n and load(b, i) == 46:
        i += 1
        if i >= n or not (48 <= load(b, i) <= 57):
            return -1, 0.0, False
        while i < n and 48 <= load(b, i) <= 57:
            if mant == 0 and load(b, i) == 48:
                exp10 -= 1  # a leading zero of the fraction
            elif sig < 19:
                mant = mant * np.uint64(10) + np.uint64(load(b, i) - 48)
                sig += 1
                exp10 -= 1
            else:
                truncated = truncated or load(b, i) != 48
            i += 1
    if i < n and (load(b, i) == 101 or load(b, i) == 69):
        i += 1
        eneg = False
        if i < n and (load(b, i) == 43 or load(b, i) == 45):
            eneg = load(b, i) == 45
            i += 1
        if i >= n or not (48 <= load(b, i) <= 57):
            return -1, 0.0, False
        e = 0
        while i < n and 48 <= load(b, i) <= 57:
            if e < 100000:
                e = e * 10 + (load(b, i) - 48)
            i += 1
        exp10 += -e if eneg else e
    if truncated or mant > np.uint64(_MAX_EXACT) or exp10 < -22 or exp10 > 22:
        return i, 0.0, False
    v = float(mant)
    if exp10 < 0:
        v = v / _POW10[-exp10]
    elif exp10 > 0:
        v = v * _POW10[exp10]
    return i, -v if neg else v, True


@njit(cache=True, nogil=True)
def gather(b: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """The byte spans ``[starts[q], ends[q])`` of ``b`` as one buffer plus offsets (an
    Arrow string array's layout)."""
    offsets = np.empty(len(starts) + 1, dtype=np.int32)
    offsets[0] = 0
    for q in range(len(starts)):
        offsets[q + 1] = offsets[q] + (ends[q] - starts[q])
    data = np.empty(offsets[-1], dtype=np.uint8)
    for q in range(len(starts)):
        data[offsets[q]:offsets[q + 1]] = b[starts[q]:ends[q]]
    return data, offsets


@njit(cache=True, nogil=True)
def span_hash(b: np.ndarray, s: int, e: int, h: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """Mixes the bytes ``b[s:e]`` into ``h``, eight at a time (a table index, not a digest:
    equal hashes are always compared byte by byte)."""
    k = np.uint64(0x9E3779B97F4A7C15)
    x = s
    while x + 8 <= e:
        w = np.uint64(0)
        for q in range(8):
            w |= np.uint64(load(b, x + q)) << np.uint64(8 * q)
        h = ((h << np.uint64(5)) | (h >> np.uint64(59))) ^ w
        h *= k
        x += 8
    w = np.uint64(e - s)
    q = 0
    while x < e:
        w ^= np.uint64(load(b, x)) << np.uint64(8 * q)
        x += 1
        q += 1
    h = ((h << np.uint64(5)) | (h >> np.uint64(59))) ^ w
    h *= k
    return h ^ (h >> np.uint64(29))


@njit(cache=True, nogil=True)
def _word(w: np.ndarray, x: int) -> np.uint64:  # pragma: no cover - compiled
    """The eight bytes at byte offset ``x`` of the words ``w`` (native order), as one word."""
    i = x >> 3
    r = x & 7
    if r == 0:
        return load(w, i)  # type: ignore[no-any-return]
    return (load(w, i) >> np.uint64(8 * r)) | (load(w, i + 1) << np.uint64(64 - 8 * r))  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)
def intern_spans(b: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Number equal byte spans ``[starts[q], ends[q])`` of ``b`` alike: (per span the
    number of its contents, per number the first span with it). Spans are hashed and
    compared eight bytes at a time (from an aligned copy of ``b``)."""
    m = len(starts)
    w = np.zeros(len(b) // 8 + 2, dtype=np.uint64)
    w.view(np.uint8)[: len(b)] = b
    size = 16
    while size < 2 * m:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    code = np.empty(m, dtype=np.int64)
    reps = np.empty(m, dtype=np.int64)
    k = np.uint64(0x9E3779B97F4A7C15)
    n = 0
    for q in range(m):
        s = starts[q]
        e = ends[q]
        h = np.uint64(e - s)
        x = s
        while x + 8 <= e:
            h = (((h << np.uint64(5)) | (h >> np.uint64(59))) ^ _word(w, x)) * k
            x += 8
        if x < e:  # the last 1-7 bytes, the rest of the word masked off
            tail = _word(w, x) & ((np.uint64(1) << np.uint64(8 * (e - x))) - np.uint64(1))
            h = (((h << np.uint64(5)) | (h >> np.uint64(59))) ^ tail) * k
        h ^= h >> np.uint64(29)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            r = table[slot]
            if r < 0:
                table[slot] = n
                reps[n] = q
                code[q] = n
                n += 1
                break
            p = starts[reps[r]]
            same = ends[reps[r]] - p == e - s
            if same:
                y = 0
                while s + y + 8 <= e:
                    if _word(w, p + y) != _word(w, s + y):
                        same = False
                        break
                    y += 8
                while same and s + y < e:
                    if load(b, p + y) != load(b, s + y):
                        same = False
                    y += 1
            if same:
                code[q] = r
                break
            slot = np.int64((slot + 1) & (size - 1))
    return code, reps[:n]


@njit(cache=True, nogil=True)
def _hash(b: np.ndarray, spans: np.ndarray, j: int) -> np.uint64:  # pragma: no cover - compiled
    h = np.uint64(0)
    for f in range(3):
        h = span_hash(b, spans[j, 2 * f], spans[j, 2 * f + 1], h)
    return h


@njit(cache=True, nogil=True)
def _same(b: np.ndarray, spans: np.ndarray, x: int, y: int) -> bool:  # pragma: no cover - compiled
    for f in range(3):
        s1, e1, s2, e2 = spans[x, 2 * f], spans[x, 2 * f + 1], spans[y, 2 * f], spans[y, 2 * f + 1]
        if e1 - s1 != e2 - s2:
            return False
        for q in range(e1 - s1):
            if load(b, s1 + q) != load(b, s2 + q):
                return False
    return True


@njit(cache=True, nogil=True)
def _key_is(b: np.ndarray, s: int, e: int, word: np.ndarray) -> bool:  # pragma: no cover - compiled
    if e - s != len(word):
        return False
    for q in range(len(word)):  # noqa: SIM110 (a generator does not compile)
        if load(b, s + q) != word[q]:
            return False
    return True


_SERVICE = np.frombuffer(b"service", np.uint8)
_METRIC = np.frombuffer(b"metric", np.uint8)
_TS = np.frombuffer(b"ts", np.uint8)
_VALUE = np.frombuffer(b"value", np.uint8)
_LABELS = np.frombuffer(b"labels", np.uint8)
_POINTS = np.frombuffer(b"points", np.uint8)


@njit(cache=True, nogil=True)
def _point(b: np.ndarray, i: int, n: int, j: int, spans: np.ndarray, num: np.ndarray, exact: np.ndarray,
           numspan: np.ndarray, ws: np.ndarray, wm: np.ndarray, wt: np.ndarray, wv: np.ndarray,
           wl: np.ndarray) -> int:  # pragma: no cover - compiled
    """Reads the point object at b[i] into row j; index after it, or -1 (fall back)."""
    if load(b, i) != 123:
        return -1
    i = _ws(b, i + 1, n)
    seen = 0
    spans[j, 4] = 0
    spans[j, 5] = 0  # no labels: an empty span
    if i < n and load(b, i) == 125:
        return -1
    while i < n:
        if load(b, i) != 34:
            return -1
        ks = i + 1
        ke, esc = _string_end(b, i, n)
        if ke < 0 or esc:
            return -1
        i = _ws(b, ke, n)
        if i >= n or load(b, i) != 58:
            return -1
        i = _ws(b, i + 1, n)
        if i >= n:
            return -1
        kb, kend = ks, ke - 1
        # which field: by length and first letter, then the whole name
        klen = kend - kb
        first = load(b, kb) if klen > 0 else 0
        field = -1
        if klen == 7 and first == 115 and _key_is(b, kb, kend, ws):
            field = 0
        elif klen == 6 and first == 109 and _key_is(b, kb, kend, wm):
            field = 1
        elif klen == 2 and first == 116 and load(b, kb + 1) == 115:
            field = 2
        elif klen == 5 and first == 118 and _key_is(b, kb, kend, wv):
            field = 3
        elif klen == 6 and first == 108 and _key_is(b, kb, kend, wl):
            field = 4
        if field == 0 or field == 1:
            if load(b, i) != 34:
                return -1
            e, esc = _string_end(b, i, n)
            if e < 0 or esc:
                return -1
            spans[j, 2 * field] = i + 1
            spans[j, 2 * field + 1] = e - 1
            seen |= 1 << field
            i = e
        elif field == 2 or field == 3:
            f = field - 2
            e, v, ok = _number(b, i, n)
            if e < 0:
                return -1
            num[j, f] = v
            exact[j, f] = ok
            numspan[j, 2 * f] = i
            numspan[j, 2 * f + 1] = e
            seen |= 4 << f
            i = e
        elif field == 4:
            if load(b, i) == 110:  # null
                e = _literal(b, i, n)
                if e < 0:
                    return -1
            elif load(b, i) == 123:
                e = _skip(b, i, n)
                if e < 0:
                    return -1
                spans[j, 4] = i
                spans[j, 5] = e
            else:
                return -1
            i = e
        else:
            i = _skip(b, i, n)
            if i < 0:
                return -1
        i = _ws(b, i, n)
        if i >= n:
            return -1
        if load(b, i) == 44:
            i = _ws(b, i + 1, n)
            continue
        if load(b, i) == 125:
            return i + 1 if seen == 15 else -1
        return -1
    return -1


@njit(cache=True, nogil=True)
def scan(b: np.ndarray, ndjson: bool, spans: np.ndarray, num: np.ndarray, exact: np.ndarray, numspan: np.ndarray,
         code: np.ndarray, reps: np.ndarray, table: np.ndarray, ws: np.ndarray, wm: np.ndarray, wt: np.ndarray,
         wv: np.ndarray, wl: np.ndarray, wp: np.ndarray) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """(status, points, series). ``spans``/``num``/... have room for ``len(code)`` points;
    ``table`` (a power of two, -1 filled) is the hash table of series."""
    n = len(b)
    cap = len(code)
    mask = len(table) - 1
    i = _ws(b, 0, n)
    if i >= n:
        return FALLBACK, 0, 0
    end_char = 93
    wrapped = False
    if ndjson:
        end_char = -1
    elif load(b, i) == 123:  # {"points": [...], ...}: find the array
        i = _ws(b, i + 1, n)
        found = False
        while i < n and load(b, i) == 34:
            ks = i + 1
            ke, esc = _string_end(b, i, n)
            if ke < 0 or esc:
                return FALLBACK, 0, 0
            i = _ws(b, ke, n)
            if i >= n or load(b, i) != 58:
                return FALLBACK, 0, 0
            i = _ws(b, i + 1, n)
            if _key_is(b, ks, ke - 1, wp) and i < n and load(b, i) == 91:
                found = True
                wrapped = True
                i += 1
                break
            i = _skip(b, i, n)
            if i < 0:
                return FALLBACK, 0, 0
            i = _ws(b, i, n)
            if i < n and load(b, i) == 44:
                i = _ws(b, i + 1, n)
        if not found:
            return FALLBACK, 0, 0
    elif load(b, i) == 91:
        i += 1
    else:
        return FALLBACK, 0, 0
    j = 0
    k = 0
    i = _ws(b, i, n)
    while True:
        if i >= n:
            if ndjson:
                break
            return FALLBACK, 0, 0
        if load(b, i) == end_char and j == 0:
            i += 1
            break
        if j >= cap:
            return FALLBACK, 0, 0
        i = _point(b, i, n, j, spans, num, exact, numspan, ws, wm, wt, wv, wl)
        if i < 0:
            return FALLBACK, 0, 0
        h = _hash(b, spans, j)
        slot = np.int64(h & np.uint64(mask))
        while True:
            r = table[slot]
            if r < 0:
                table[slot] = k
                reps[k] = j
                code[j] = k
                k += 1
                break
            if _same(b, spans, reps[r], j):
                code[j] = r
                break
            slot = np.int64((slot + 1) & mask)
        j += 1
        i = _ws(b, i, n)
        if ndjson:
            continue
        if i < n and load(b, i) == 44:
            i = _ws(b, i + 1, n)
            continue
        if i < n and load(b, i) == end_char:
            i += 1
            break
        return FALLBACK, 0, 0
    if not ndjson and wrapped:  # the rest of the wrapping object: other keys, then the end
        i = _ws(b, i, n)
        while i < n and load(b, i) == 44:
            i = _ws(b, i + 1, n)
            if i >= n or load(b, i) != 34:
                return FALLBACK, 0, 0
            ks = i + 1
            ke, esc = _string_end(b, i, n)
            if ke < 0 or esc or _key_is(b, ks, ke - 1, wp):
                return FALLBACK, 0, 0
            i = _ws(b, ke, n)
            if i >= n or load(b, i) != 58:
                return FALLBACK, 0, 0
            i = _skip(b, _ws(b, i + 1, n), n)
            if i < 0:
                return FALLBACK, 0, 0
            i = _ws(b, i, n)
        if i >= n or load(b, i) != 125:
            return FALLBACK, 0, 0
        i += 1
    if _ws(b, i, n) != n:
        return FALLBACK, 0, 0
    return OK, j, k
