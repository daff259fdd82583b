"""Metric batches as distinct series plus points: every fast path gives the batch the
reference validator gives, and hands anything unusual to it."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pyarrow as pa
import pytest

from server.api.validation import BatchError, parse_items, validate_metrics
from server.events import MetricPoints, decode, encode
from server.ingest import arrow_ipc, json_points, remote_write
from server.model.points import Points


def _rows(points: Points) -> list[tuple[str, str, str | None, float, float]]:
    t = points.table()
    return list(zip(*(t.column(c).to_pylist() for c in ("service", "metric", "labels", "ts", "value")), strict=True))


def _reference(body: bytes, *, ndjson: bool = False) -> Points:
    return Points.from_table(validate_metrics(parse_items(body, "points", ndjson=ndjson)))


def _random_points(seed: int, n: int = 300) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        p: dict[str, object] = {"service": rnd.choice(["a", "b", "é-svc"]), "metric": rnd.choice(["lat", "qps"]),
                                "ts": 1.7e9 + i * 10 + rnd.random(), "value": rnd.choice([rnd.gauss(0, 1e3), 7, -0.0])}
        r = rnd.random()
        if r < 0.3:
            pod, zone = rnd.choice("xyz"), rnd.choice(["eu", "us"])
            # one label set, spelt with its keys in either order
            p["labels"] = {"pod": pod, "zone": zone} if rnd.random() < 0.5 else {"zone": zone, "pod": pod}
        elif r < 0.4:
            p["labels"] = None
        elif r < 0.5:
            p["labels"] = {}
        if rnd.random() < 0.1:
            p["extra"] = {"ignored": [1, 2]}
        out.append(p)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_json_fast_paths_give_the_reference_batch(seed: int) -> None:
    pts = _random_points(seed)
    import json

    pretty = json.dumps({"source": {"x": [1, "]"]}, "points": pts, "n": 3}, indent=2, ensure_ascii=False).encode()
    for body, ndjson in ((orjson.dumps({"points": pts}), False), (orjson.dumps(pts), False),
                         (b"\n".join(orjson.dumps(p) for p in pts) + b"\n", True), (pretty, False)):
        ref = _rows(_reference(body, ndjson=ndjson))
        for decoder in (json_points.scan, json_points.decode_structs):
            fast = decoder(body, ndjson=ndjson)
            assert fast is not None, decoder
            assert _rows(fast) == ref
            assert fast.k == len(set(fast.keys()))  # one series per label set, however it was spelt


def test_json_batches_that_repeat_the_last_ones_series_decode_as_the_reference() -> None:
    pts = _random_points(11)  # some label sets spelt two ways: the series table merges them
    same_length = [dict(p, service="b") if p["service"] == "a" else p for p in pts]
    new_values = [dict(p, value=float(i)) for i, p in enumerate(pts)]
    shuffled = random.Random(4).sample(pts, len(pts))
    for rows in (pts, pts, new_values, same_length, pts, shuffled, pts[:50], pts, new_values):
        body = orjson.dumps({"points": rows})
        got = json_points.scan(body)
        assert got is not None
        assert _rows(got) == _rows(_reference(body))
        assert got.k == len(set(got.keys()))


def test_json_scan_reads_every_number_as_the_json_parser_does() -> None:
    rnd = random.Random(3)
    values = [0.1, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 123456789012345678, 2 ** 53 + 1, 0.30000000000000004,
              *[rnd.uniform(-1e6, 1e6) for _ in range(200)], *[rnd.random() * 10 ** rnd.randint(-30, 30) for _ in range(200)]]
    texts = [orjson.dumps(v).decode() for v in values] + ["1E5", "1e+2", "-12.5e-3", "0.000001230", "7.0"]
    body = ("[" + ",".join(f'{{"service":"a","metric":"m","ts":{1_700_000_000 + i},"value":{t}}}'
                           for i, t in enumerate(texts)) + "]").encode()
    got = json_points.scan(body)
    assert got is not None
    assert got.value.tolist() == [orjson.loads(t) * 1.0 for t in texts]
    assert np.signbit(got.value[4])


@pytest.mark.parametrize("bad", [
    {"service": "", "metric": "m", "ts": 1.7e9, "value": 1.0},
    {"service": "a", "metric": "m", "ts": "2026-01-01T00:00:00Z", "value": 1.0},  # valid, but text ts
    {"service": "a", "metric": "m", "ts": 1.7e12, "value": 1.0},  # epoch milliseconds
    {"service": "a", "metric": "m", "ts": 1.7e9, "value": True},
    {"service": "a", "metric": "m", "ts": 1.7e9, "value": 1.0, "labels": {"pod": 3}},
    {"service": "a", "metric": "m", "ts": 1.7e9},
])
def test_json_fast_path_leaves_anything_unusual_to_the_reference(bad: dict[str, object]) -> None:
    body = orjson.dumps({"points": [{"service": "a", "metric": "m", "ts": 1.7e9, "value": 1.0}, bad]})
    assert json_points.scan(body) is None and json_points.decode(body) is None
    if bad["ts"] == "2026-01-01T00:00:00Z":
        assert _reference(body).n == 2
    else:
        with pytest.raises(BatchError):
            _reference(body)


@pytest.mark.parametrize("body", [
    b'{"points": [{"service": "a", "metric": "m", "ts": 1.7e9, "value": 1.0}]} trailing',
    b'{"points": [{"service": "a", "metric": "m", "ts": 1.7e9, "value": 1.0}], "points": []}',
    b'{"points": [{"service": "a", "metric": "m", "ts": 1.7e9, "value": 1.0, "x": tru}]}',
    b'{"points": [{"service": "a\\u00e9", "metric": "m", "ts": 1.7e9, "value": 01}]}',
    b'[{"service": "a", "metric": "m", "ts": 1.7e9, "value": 1.0},]',
])
def test_json_scan_takes_only_valid_json(body: bytes) -> None:
    assert json_points.scan(body) is None


def test_arrow_batch_validated_per_distinct_value_matches_the_reference() -> None:
    pts = _random_points(7)
    for p in pts:
        p.pop("extra", None)
    table = pa.table({
        "service": pa.array([p["service"] for p in pts]).dictionary_encode(),
        "metric": pa.array([p["metric"] for p in pts]),
        "ts": pa.array([p["ts"] for p in pts], pa.float64()),
        "value": pa.array([float(p["value"]) for p in pts]),  # type: ignore[arg-type]
        "labels": pa.array([orjson.dumps(p["labels"]).decode() if p.get("labels") else None for p in pts]),
    })
    got = arrow_ipc.decode_points(arrow_ipc.encode(table))
    assert _rows(got) == _rows(_reference(orjson.dumps({"points": pts})))
    bad = table.set_column(0, "service", pa.array(["a"] * (len(pts) - 1) + [""]))
    with pytest.raises(BatchError) as exc:
        arrow_ipc.decode_points(arrow_ipc.encode(bad))
    assert exc.value.errors[0]["loc"] == ["body", "points", len(pts) - 1, "service"]


def test_arrow_batches_that_repeat_the_last_ones_series_decode_as_the_reference() -> None:
    """The decoder reuses the last batch's label sets and series when a batch repeats them
    (the usual client): shuffled rows, a new label set and a null between such batches
    must each still give the reference batch."""
    pts = _random_points(11)
    for p in pts:
        p.pop("extra", None)

    def body(rows: list[dict[str, object]]) -> bytes:
        return arrow_ipc.encode(pa.table({
            "service": pa.array([p["service"] for p in rows]).dictionary_encode(),
            "metric": pa.array([p["metric"] for p in rows]),
            "ts": pa.array([p["ts"] for p in rows], pa.float64()),
            "value": pa.array([float(p["value"]) for p in rows]),  # type: ignore[arg-type]
            "labels": pa.array([orjson.dumps(p["labels"]).decode() if p.get("labels") else None for p in rows]),
        }))

    shuffled = random.Random(3).sample(pts, len(pts))
    relabelled = [dict(p, labels={"zone": "new"}) if i % 5 == 0 else p for i, p in enumerate(pts)]
    for rows in (pts, pts, shuffled, relabelled, pts[: len(pts) // 2], pts):
        assert _rows(arrow_ipc.decode_points(body(rows))) == _rows(_reference(orjson.dumps({"points": rows})))


def test_arrow_batches_with_the_last_ones_key_columns_byte_for_byte() -> None:
    """A batch whose service, metric and labels columns are the last valid batch's, byte
    for byte, reuses its series after one compare: its own timestamps and values are what
    is stored, a bad value in it is still refused (naming the row), and a batch that only
    looks the same (another column type, one label changed) is decoded afresh."""
    pts = _random_points(13)
    for p in pts:
        p.pop("extra", None)
    n = len(pts)

    def table(ts: list[float], values: list[float], labels: pa.DataType = pa.string()) -> pa.Table:
        return pa.table({
            "service": pa.array([p["service"] for p in pts]).dictionary_encode(),
            "metric": pa.array([p["metric"] for p in pts]),
            "ts": pa.array(ts, pa.float64()),
            "value": pa.array(values, pa.float64()),
            "labels": pa.array([orjson.dumps(p["labels"]).decode() if p.get("labels") else None for p in pts],
                               labels),
        })

    def reference(t: pa.Table) -> list[tuple[object, ...]]:
        return _rows(arrow_ipc.validate_points(t))

    ts = [float(p["ts"]) for p in pts]  # type: ignore[arg-type]
    first = table(ts, [float(i) for i in range(n)])
    assert _rows(arrow_ipc.decode_points(arrow_ipc.encode(first))) == reference(first)
    later = table([t + 60.0 for t in ts], [float(-i) for i in range(n)])
    got = arrow_ipc.decode_points(arrow_ipc.encode(later))
    assert _rows(got) == reference(later)
    assert got.series is arrow_ipc.decode_points(arrow_ipc.encode(later)).series  # reused, not rebuilt
    bad = table(ts, [float(i) for i in range(n - 1)] + [float("nan")])
    with pytest.raises(BatchError) as exc:
        arrow_ipc.decode_points(arrow_ipc.encode(bad))
    assert exc.value.errors[0]["loc"] == ["body", "points", n - 1, "value"]
    wide = table(ts, [1.0] * n, pa.large_string())  # the same texts, other offsets' width
    assert _rows(arrow_ipc.decode_points(arrow_ipc.encode(wide))) == reference(wide)
    relabelled = first.set_column(4, "labels", pa.array(['{"zone": "b"}'] + first.column("labels").to_pylist()[1:]))
    assert _rows(arrow_ipc.decode_points(arrow_ipc.encode(relabelled))) == reference(relabelled)


def test_remote_write_requests_that_repeat_the_last_ones_series() -> None:
    cache = remote_write.SeriesCache(("service", "job"))
    series = [({"__name__": f"m{i % 3}", "job": f"svc{i % 4}", "instance": f"h{i}"}, [(1.7e9 + i, float(i))])
              for i in range(40)]
    # same_length: each label set laid out where the last request had it, one byte changed
    # in every fifth (a request that looks like the last one but is not); new_values: the
    # same label bytes with other samples (the usual scrape)
    same_length = [(dict(lab, instance=lab["instance"].replace("h", "k")) if i % 5 == 0 else lab, s)
                   for i, (lab, s) in enumerate(series)]
    new_values = [(lab, [(t + 10.0, v + 1.0) for t, v in s]) for lab, s in series]
    variants = [series, series, series[::-1], [(dict(lab, instance="x"), s) for lab, s in series], series[:7], series,
                same_length, series, new_values, same_length]
    for v in variants:
        raw = remote_write.decompress(remote_write.encode_v1(v), 1 << 20)
        got = remote_write.decode(raw, cache=cache).points
        want = remote_write.decode(raw, cache=remote_write.SeriesCache(("service", "job"))).points
        assert _rows(got) == _rows(want)


@pytest.mark.parametrize("seed", range(4))
def test_intern_spans_numbers_equal_byte_spans_alike(seed: int) -> None:
    from server.ingest.json_scan import intern_spans

    rng = random.Random(seed)
    words = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30))) for _ in range(12)]
    buf, starts, ends = b"", [], []
    for _ in range(400):
        w = rng.choice(words)
        buf += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9)))  # any alignment
        starts.append(len(buf))
        buf += w
        ends.append(len(buf))
    code, first = intern_spans(np.frombuffer(buf, np.uint8), np.array(starts, np.int64), np.array(ends, np.int64))
    seen: dict[bytes, int] = {}
    for q, (a, b) in enumerate(zip(starts, ends, strict=True)):
        assert code[q] == seen.setdefault(buf[a:b], len(seen))
    assert [buf[starts[f]:ends[f]] for f in first] == list(seen)


def test_same_spans_compares_every_byte_at_any_alignment() -> None:
    from server.ingest.prom_scan import same_spans

    rng = random.Random(5)
    a = np.frombuffer(bytes(rng.randrange(256) for _ in range(300)), np.uint8)
    spans = [(s, s + n) for s in range(0, 40) for n in range(0, 20)]
    starts = np.array([x for x, _ in spans], np.int64)
    ends = np.array([y for _, y in spans], np.int64)
    assert same_spans(a, a.copy(), starts, ends)
    for pos in range(0, 60):
        b = a.copy()
        b[pos] ^= 1
        want = all(not (x <= pos < y) for x, y in spans)
        assert same_spans(a, b, starts, ends) == want
    assert not same_spans(a, a[:50].copy(), starts, ends)  # a span past the end of the other


def test_whole_request_compare_sees_a_difference_in_any_byte() -> None:
    from server.ingest.prom_scan import _all_equal

    rng = random.Random(6)
    for size in (0, 1, 7, 8, 9, 63, 64, 65, 301):
        a = np.frombuffer(bytes(rng.randrange(256) for _ in range(size)), np.uint8)
        assert _all_equal(a, a.copy())
        for pos in range(size):
            b = a.copy()
            b[pos] ^= 0x80
            assert not _all_equal(a, b)


def test_remote_write_label_orders_are_one_series() -> None:
    cache = remote_write.SeriesCache(("service", "job"))
    raw = remote_write.encode_v1([({"__name__": "up", "job": "api", "pod": "a", "zone": "eu"}, [(1.7e9, 1.0)])])
    first = remote_write.decode(remote_write.decompress(raw, 1 << 20), cache=cache)
    # the same series with its labels in another order (another client): the same key
    from server.ingest.prompb import WriteRequest

    req = WriteRequest()
    ts = req.timeseries.add()
    for k, v in (("zone", "eu"), ("pod", "a"), ("job", "api"), ("__name__", "up")):
        ts.labels.add(name=k, value=v)
    ts.samples.add(value=2.0, timestamp=int(1.7e12) + 10_000)
    import cramjam

    second = remote_write.decode(bytes(cramjam.snappy.decompress_raw(cramjam.snappy.compress_raw(
        req.SerializeToString()))), cache=cache)
    assert first.points.keys() == second.points.keys() == [("api", "up", '{"pod":"a","zone":"eu"}')]


def test_a_batch_travels_as_series_plus_codes() -> None:
    pts = Points.from_table(pa.table({"service": ["a", "b", "a"], "metric": ["m", "m", "m"], "ts": [1.0, 2.0, 3.0],
                                      "value": [1.0, 2.0, 3.0], "labels": [None, '{"p":"1"}', None]}))
    back = decode(encode(MetricPoints.from_points(pts, seq=41)))
    assert isinstance(back, MetricPoints) and back.seq == 41 and back.count == 3
    assert _rows(back.points()) == _rows(pts) and back.points().k == 2
    parts = pts.split(np.array([0, 1]), 2)
    assert [_rows(p) for p in parts] == [[("a", "m", None, 1.0, 1.0), ("a", "m", None, 3.0, 3.0)],
                                         [("b", "m", '{"p":"1"}', 2.0, 2.0)]]


def test_series_stats_count_and_time_range_per_series() -> None:
    from server.model.points import series_stats

    rng = np.random.default_rng(2)
    code = rng.integers(0, 50, 2000).astype(np.int32)
    ts = rng.uniform(1.7e9, 1.8e9, 2000)
    count, lo, hi = series_stats(code, ts, 53)  # three series without points in this batch
    for k in range(53):
        mine = ts[code == k]
        assert count[k] == len(mine)
        assert (lo[k], hi[k]) == ((mine.min(), mine.max()) if len(mine) else (np.inf, -np.inf))
    with pytest.raises(ValueError, match="series codes"):
        series_stats(np.array([0, 5], np.int32), np.array([1.0, 2.0]), 5)
