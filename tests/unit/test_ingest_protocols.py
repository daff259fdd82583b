"""Pure protocol adapters: remote-write fast path vs the protobuf library, OTLP mapping
helpers, alert parsing, webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

import cramjam
import numpy as np
import pytest

from server.ingest import alerts, otlp, prom_scan, remote_write, webhooks
from server.ingest.errors import BatchError, DecodeError, Unauthorized, UnsupportedMediaType
from server.ingest.prompb import WriteRequest

T0 = 1_764_460_800.0


def _library(raw: bytes) -> remote_write.WriteResult:
    req = WriteRequest.FromString(raw)
    series = [(tuple(x for lab in ts.labels for x in (lab.name, lab.value)), ts.samples) for ts in req.timeseries]
    return remote_write._table(series, remote_write.SeriesCache(("service", "job")), remote_write.V1)


def _raw(series: list) -> bytes:
    return remote_write.decompress(remote_write.encode_v1(series), 1 << 26).tobytes()


def test_fast_path_equals_protobuf_library() -> None:
    rng = np.random.default_rng(1)
    series = []
    for i in range(300):
        labels = {"__name__": f"m{i % 7}", "job": f"svc{i % 5}", "instance": f"h{i}", "path": "/é/ü" if i % 2 else ""}
        samples = [(T0 + 15 * k - (10**6 if i == 3 else 0), float(rng.normal())) for k in range(i % 4)]
        series.append((labels, samples))
    series.append(({"__name__": "neg", "job": "x"}, [(-5.5, -1e300), (0.0, 0.0)]))  # negative ts, zero value
    raw = _raw(series)
    cache = remote_write.SeriesCache(("service", "job"))
    for _ in range(2):  # second time from the cache
        fast = remote_write.decode(raw, cache=cache)
        assert fast.table.equals(_library(raw).table)
    assert fast.samples == sum(len(s) for _, s in series)


def test_fast_path_rescans_a_request_of_many_small_series() -> None:
    """The scan makes room for one series per BYTES_PER_SERIES bytes first; a request of
    smaller series entries (here mostly series without samples) is scanned again with room
    for all, and still decodes as the protobuf library does."""
    series = [({"__name__": "m", "job": "j"}, []) for _ in range(3000)]
    series += [({"__name__": "m", "job": f"s{i}"}, [(T0 + i, float(i))]) for i in range(10)]
    raw = _raw(series)
    buf = np.frombuffer(raw, np.uint8)
    assert prom_scan.scan_v1(buf, len(buf) // prom_scan.BYTES_PER_SERIES + 64)[0] == prom_scan.GROW
    assert prom_scan.scan_v1(buf, 0)[0] == prom_scan.OK
    fast = remote_write.decode(raw, cache=remote_write.SeriesCache(("service", "job")))
    assert fast.table.equals(_library(raw).table) and fast.samples == 10


def test_a_request_like_the_last_but_its_samples_is_read_without_a_scan() -> None:
    """Prometheus sends the same series every time: a request whose bytes are the last
    one's but for the samples' values and timestamps is read at the same places; any other
    difference (a label value, a timestamp of another varint length) is scanned again.
    Every answer equals the protobuf library's."""
    rng = np.random.default_rng(3)

    def request(t0: float, job: str = "api", scale: float = 1.0) -> bytes:
        return _raw([({"__name__": f"m{i % 3}", "job": job, "instance": f"h{i}"}, [(t0 + i, scale * float(rng.normal()))])
                     for i in range(200)])

    cache = remote_write.SeriesCache(("service", "job"))
    first = request(T0)
    remote_write.decode(first, cache=cache)
    assert cache.last_fields is not None
    for raw in (request(T0 + 15), request(T0 + 30, scale=1e300), request(T0 + 45, job="apj"),  # label changed
                request(T0 + 60), request(1.0), request(2.0)):  # timestamps of another length
        got = remote_write.decode(raw, cache=cache)
        assert got.table.equals(_library(raw).table)
    # a label value of the same length: the bytes differ outside the samples
    memo = cache.last_fields
    assert memo is not None
    changed = np.frombuffer(request(2.0, job="apj"), np.uint8)
    assert len(changed) == len(memo[0]) and not prom_scan.same_but_samples(changed, memo[0], memo[1])[0]
    # the usual scrape: read at the places of the last request's samples
    remote_write.decode(request(T0 + 75), cache=cache)
    again = request(T0 + 90)
    memo = cache.last_fields
    assert memo is not None and prom_scan.same_but_samples(np.frombuffer(again, np.uint8), memo[0], memo[1])[0]
    assert remote_write.decode(again, cache=cache).table.equals(_library(again).table)


def test_fast_path_falls_back_on_interleaved_labels_and_rejects_garbage() -> None:
    # labels after a sample (legal protobuf, never sent by Prometheus): the library decodes it
    lab = lambda n, v: b"\x0a" + bytes([4 + len(n) + len(v)]) + b"\x0a" + bytes([len(n)]) + n + b"\x12" + bytes([len(v)]) + v  # noqa: E731
    sample = b"\x12\x0b\x09" + np.float64(2.5).tobytes() + b"\x10\x01"
    ts = lab(b"__name__", b"up") + sample + lab(b"job", b"api")
    raw = b"\x0a" + bytes([len(ts)]) + ts
    assert prom_scan.scan_v1(np.frombuffer(raw, np.uint8))[0] == prom_scan.FALLBACK
    res = remote_write.decode(raw, cache=remote_write.SeriesCache(("service", "job")))
    assert res.table.to_pylist() == [{"service": "api", "metric": "up", "ts": 0.001, "value": 2.5, "labels": None}]
    with pytest.raises(DecodeError):
        remote_write.decode(b"\x0a\x50\x01", cache=remote_write.SeriesCache(("job",)))
    with pytest.raises(DecodeError):
        remote_write.decompress(b"\xff\xff\xff\xff\xff\xff", 1 << 20)
    big = bytes(cramjam.snappy.compress_raw(b"\x00" * 5000))
    with pytest.raises(DecodeError, match="exceeds"):
        remote_write.decompress(big, 1000)
    ok = bytes(cramjam.snappy.compress_raw(b"hello world hello"))  # its length header, then the block
    for bad in (bytes([ok[0] + 3]) + ok[1:], bytes([ok[0] - 3]) + ok[1:], ok[:-2]):  # lies about its size, cut
        with pytest.raises(DecodeError, match="not valid snappy"):
            remote_write.decompress(bad, 1 << 20)
    with pytest.raises(UnsupportedMediaType):
        remote_write.protocol_of("application/x-protobuf;proto=io.prometheus.write.v3.Request")
    assert remote_write.protocol_of("application/x-protobuf; proto=io.prometheus.write.v2.Request") == remote_write.V2


def test_missing_metric_name_rejects_request() -> None:
    raw = _raw([({"job": "a"}, [(T0, 1.0)]), ({"__name__": "ok", "job": "a"}, [(T0, 1.0)])])
    with pytest.raises(BatchError) as e:
        remote_write.decode(raw, cache=remote_write.SeriesCache(("service", "job")))
    assert e.value.errors[0]["loc"] == ["body", "timeseries", 0, "labels", "__name__"]


def test_bucket_quantiles() -> None:
    assert otlp.bucket_quantile(0.5, [10.0, 50.0], [2, 6, 2]) == pytest.approx(10 + 40 * 3 / 6)
    assert otlp.bucket_quantile(0.99, [10.0, 50.0], [0, 0, 5]) == 50.0  # overflow bucket: its lower bound
    assert otlp.bucket_quantile(0.5, [10.0], [0, 0]) is None
    assert otlp.severity_level(17, "") == "ERROR" and otlp.severity_level(0, "warning") == "WARN"
    assert otlp.severity_level(3, "") == "DEBUG" and otlp.severity_level(24, "") == "FATAL"


def test_alert_forms() -> None:
    am = {"version": "4", "status": "resolved", "receiver": "r", "alerts": [
        {"status": "resolved", "labels": {"alertname": "A", "job": "api", "service": "checkout"},
         "startsAt": "2025-11-30T00:00:00Z", "endsAt": "2025-11-30T00:05:00Z", "fingerprint": "f1"}]}
    (a,) = alerts.parse_alerts(am)
    assert (a.id, a.services, a.status, a.ends_at) == (f"am-f1-{int(T0)}", ["checkout"], "resolved", T0 + 300)
    (g,) = alerts.parse_alerts({"name": "B", "service": "x", "starts_at": T0, "ends_at": T0 + 1})
    assert g.status == "resolved" and g.services == ["x"]
    with pytest.raises(BatchError) as e:
        alerts.parse_alerts([{"name": "B", "services": ["x"], "starts_at": T0, "status": "resolved"}])
    assert e.value.errors[0]["loc"] == ["body", "alerts", 0, "ends_at"]


def test_signatures() -> None:
    body = b'{"a": 1}'
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    webhooks.verify_hmac(body, "k", "sha256=" + sig, prefix="sha256=")
    webhooks.verify_hmac(body, None, None)  # no secret configured: nothing to check
    for bad in (None, "sha256=" + "0" * 64, sig):
        with pytest.raises(Unauthorized):
            webhooks.verify_hmac(body, "k", bad, prefix="sha256=")
    webhooks.verify_token("t", "Bearer t", None)
    with pytest.raises(Unauthorized):
        webhooks.verify_token("t", None, "u")
