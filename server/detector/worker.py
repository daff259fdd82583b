"""The detector's edge: Arrow batches of points in, per-series detector events out.

A series is (service, metric, label set): the stage keeps the series index map keyed by
service, metric and the canonical label text (:mod:`server.model.labels`), and the
per-series newest timestamp.
Points are fed to the detector in event-time order per series: a batch is sorted by
(series, ts) and stepped in one call. A point not newer than its series' last detected
point is late: it is stored (by the API) but not detected, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from server.detector import kernel as K
from server.detector.core import DetectorConfig, DetectorEvent, StreamingDetector
from server.detector.explain import explain
from server.model.labels import parse_labels
from server.model.points import Points, SeriesKey

_SEP = "\x1f"  # canonical label JSON never holds a raw \x1f (JSON escapes control characters)


@dataclass(slots=True)
class SeriesEvent:
    service: str
    metric: str
    series: int
    event: DetectorEvent
    labels: dict[str, str] | None = None  # the series' label set (None: no labels)
    reason: str | None = None  # open events: one sentence on why it is anomalous


class DetectorStage:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.detector = StreamingDetector(config)
        self.index: dict[str, int] = {}  # "service SEP metric SEP labels" -> series
        self.by_key: dict[SeriesKey, int] = {}  # (service, metric, labels or None) -> series
        self._batch_cache: tuple[pa.Table, np.ndarray] | None = None  # the last batch's series and their indices
        self.names: list[tuple[str, str]] = []
        self.labels: list[str] = []  # canonical label text per series ("" for none)
        self._parsed: dict[str, dict[str, str] | None] = {"": None}
        self.last_ts = np.full(1024, -np.inf)
        self.late_points = 0
        self.points = 0
        self.watermark = -np.inf

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        state = self.detector.get_state()
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, names=np.array([f"{s}{_SEP}{m}" for s, m in self.names], dtype=object),
                 labels=np.array(self.labels, dtype=object),
                 last_ts=self.last_ts[: len(self.names)], late=np.array([self.late_points]),
                 watermark=np.array([self.watermark]),
                 **{f"det_{k}": v for k, v in state.items()})  # type: ignore[arg-type]
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        if not path.exists():
            return False
        self._batch_cache = None
        with np.load(path, allow_pickle=True) as z:
            names = [str(x) for x in z["names"]]
            # a state file written before series had labels: every series has the empty label set
            labels = [str(x) for x in z["labels"]] if "labels" in z.files else [""] * len(names)
            if len(labels) != len(names):
                raise ValueError(f"detector state {path}: {len(names)} series names but {len(labels)} label sets")
            self.detector.set_state({k[4:]: z[k] for k in z.files if k.startswith("det_")})
            self.names = [tuple(n.split(_SEP, 1)) for n in names]  # type: ignore[misc]
            self.labels = labels
            self.index = {f"{n}{_SEP}{lab}": i for i, (n, lab) in enumerate(zip(names, labels, strict=True))}
            self.by_key = {(s, m, lab or None): i for i, ((s, m), lab) in enumerate(zip(self.names, labels, strict=True))}
            self.last_ts = np.full(max(1024, len(names) * 2), -np.inf)
            self.last_ts[: len(names)] = z["last_ts"]
            self.late_points = int(z["late"][0])
            self.watermark = float(z["watermark"][0])
        return True

    # ---- processing -------------------------------------------------------------------------
    def _series_ids(self, table: pa.Table) -> np.ndarray:
        if "labels" in table.column_names and table.column("labels").type != pa.null():
            labels = pc.fill_null(table.column("labels"), "")
        else:
            labels = pa.chunked_array([pa.array([""] * table.num_rows, pa.string())])
        keys = pc.binary_join_element_wise(table.column("service"), table.column("metric"), labels, _SEP)
        enc = pc.dictionary_encode(keys).combine_chunks()
        uniq = enc.dictionary.to_pylist()
        mapping = np.empty(len(uniq), dtype=np.int64)
        for j, k in enumerate(uniq):
            i = self.index.get(k)
            if i is None:
                name, _, lab = k.rpartition(_SEP)
                svc, met = name.split(_SEP, 1)
                i = self._add(svc, met, lab)
            mapping[j] = i
        self._grow()
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        out: np.ndarray = mapping[codes]
        return out

    def _add(self, svc: str, met: str, lab: str) -> int:
        i = len(self.names)
        self.index[f"{svc}{_SEP}{met}{_SEP}{lab}"] = i
        self.by_key[(svc, met, lab or None)] = i
        self.names.append((svc, met))
        self.labels.append(lab)
        if lab not in self._parsed:
            self._parsed[lab] = parse_labels(lab)
        return i

    def _grow(self) -> None:
        n = len(self.names)
        if n > len(self.last_ts):
            grown = np.full(max(n, 2 * len(self.last_ts)), -np.inf)
            grown[: len(self.last_ts)] = self.last_ts
            self.last_ts = grown
        self.detector.ensure(n)

    def process(self, table: pa.Table) -> list[SeriesEvent]:
        """A wide table (service, metric, ts, value, optional labels)."""
        if table.num_rows == 0:
            return []
        sid = self._series_ids(table)
        ts = table.column("ts").to_numpy().astype(np.float64, copy=False)
        vals = table.column("value").to_numpy().astype(np.float64, copy=False)
        return self._process(sid, ts, vals)

    def process_points(self, points: Points) -> list[SeriesEvent]:
        """A batch of distinct series plus per-point codes: the series are looked up once
        each, the points go to the kernel as arrays."""
        if points.n == 0:
            return []
        cached = self._batch_cache
        if cached is not None and cached[0].num_rows == points.k and cached[0].equals(points.series):
            mapping = cached[1]  # the same series as the last batch (a scrape, a replay): one compare
        else:
            by_key = self.by_key
            mapping = np.empty(points.k, dtype=np.int64)
            for j, key in enumerate(points.keys()):
                i = by_key.get(key)
                if i is None:
                    i = self._add(key[0], key[1], key[2] or "")
                mapping[j] = i
            self._grow()
            self._batch_cache = (points.series, mapping)
        order = K.group_order(points.code, points.ts, points.k)  # each series' points together, in time order
        return self._process(mapping[points.code], points.ts, points.value, order if len(order) else None)

    def _process(self, sid: np.ndarray, ts: np.ndarray, vals: np.ndarray,
                 order: np.ndarray | None = None) -> list[SeriesEvent]:
        """Points of known series (any order; ``order``: a grouping by series with each
        series' points in time order, when the caller has one)."""
        if order is None:
            order = np.lexsort((ts, sid))
        n = len(order)
        sid, ts, vals, newest = K.take_new(order, np.ascontiguousarray(sid, dtype=np.int64),
                                           np.ascontiguousarray(ts, dtype=np.float64),
                                           np.ascontiguousarray(vals, dtype=np.float64), self.last_ts)
        self.late_points += n - len(sid)
        if len(sid) == 0:
            return []
        self.points += len(sid)
        self.watermark = max(self.watermark, newest)
        # one call: the kernel takes each series' points in the given (time) order
        events: list[DetectorEvent] = self.detector.step(sid, ts, vals).events
        out = [SeriesEvent(self.names[e.series][0], self.names[e.series][1], e.series, e,
                           self.labels_of(e.series),
                           explain(e, self.names[e.series][1]) if e.kind == "open" else None) for e in events]
        out.sort(key=lambda se: (se.event.ts, se.series))
        return out

    def labels_of(self, series: int) -> dict[str, str] | None:
        """The label set of a series (None: no labels)."""
        lab = self.labels[series]
        if lab not in self._parsed:
            self._parsed[lab] = parse_labels(lab)
        got = self._parsed[lab]
        return dict(got) if got else None
