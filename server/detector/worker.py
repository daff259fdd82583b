"""The detector's edge: Arrow batches of points in, per-series detector events out.

Keeps the (service, metric) -> series index map and the per-series newest timestamp.
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

from server.detector.core import DetectorConfig, DetectorEvent, StreamingDetector

_SEP = "\x1f"


@dataclass(slots=True)
class SeriesEvent:
    service: str
    metric: str
    series: int
    event: DetectorEvent


class DetectorStage:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.detector = StreamingDetector(config)
        self.index: dict[str, int] = {}
        self.names: list[tuple[str, str]] = []
        self.last_ts = np.full(1024, -np.inf)
        self.late_points = 0
        self.points = 0
        self.watermark = -np.inf

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        state = self.detector.get_state()
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, names=np.array([f"{s}{_SEP}{m}" for s, m in self.names], dtype=object),
                 last_ts=self.last_ts[: len(self.names)], late=np.array([self.late_points]),
                 watermark=np.array([self.watermark]),
                 **{f"det_{k}": v for k, v in state.items()})  # type: ignore[arg-type]
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        if not path.exists():
            return False
        with np.load(path, allow_pickle=True) as z:
            names = [str(x) for x in z["names"]]
            self.detector.set_state({k[4:]: z[k] for k in z.files if k.startswith("det_")})
            self.names = [tuple(n.split(_SEP, 1)) for n in names]  # type: ignore[misc]
            self.index = {n: i for i, n in enumerate(names)}
            self.last_ts = np.full(max(1024, len(names) * 2), -np.inf)
            self.last_ts[: len(names)] = z["last_ts"]
            self.late_points = int(z["late"][0])
            self.watermark = float(z["watermark"][0])
        return True

    # ---- processing -------------------------------------------------------------------------
    def _series_ids(self, table: pa.Table) -> np.ndarray:
        keys = pc.binary_join_element_wise(table.column("service"), table.column("metric"), _SEP)
        enc = pc.dictionary_encode(keys).combine_chunks()
        uniq = enc.dictionary.to_pylist()
        mapping = np.empty(len(uniq), dtype=np.int64)
        for j, k in enumerate(uniq):
            i = self.index.get(k)
            if i is None:
                i = len(self.names)
                self.index[k] = i
                svc, met = k.split(_SEP, 1)
                self.names.append((svc, met))
            mapping[j] = i
        n = len(self.names)
        if n > len(self.last_ts):
            grown = np.full(max(n, 2 * len(self.last_ts)), -np.inf)
            grown[: len(self.last_ts)] = self.last_ts
            self.last_ts = grown
        self.detector.ensure(n)
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return mapping[codes]

    def process(self, table: pa.Table) -> list[SeriesEvent]:
        if table.num_rows == 0:
            return []
        sid = self._series_ids(table)
        ts = table.column("ts").to_numpy().astype(np.float64, copy=False)
        vals = table.column("value").to_numpy().astype(np.float64, copy=False)
        order = np.lexsort((ts, sid))
        sid, ts, vals = sid[order], ts[order], vals[order]
        # previous timestamp of each row within its series (or the series' last detected point)
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        starts = np.ones(len(sid), dtype=bool)
        starts[1:] = sid[1:] != sid[:-1]
        prev[starts] = self.last_ts[sid[starts]]
        keep = ts > prev
        keep &= ts > self.last_ts[sid]
        n_late = int((~keep).sum())
        self.late_points += n_late
        if n_late:
            sid, ts, vals = sid[keep], ts[keep], vals[keep]
            if len(sid) == 0:
                return []
        self.points += len(sid)
        # one call: the kernel takes each series' points in the given (time) order
        events: list[DetectorEvent] = self.detector.step(sid, ts, vals).events
        ends = np.ones(len(sid), dtype=bool)
        ends[:-1] = sid[1:] != sid[:-1]
        self.last_ts[sid[ends]] = ts[ends]
        self.watermark = max(self.watermark, float(ts.max()))
        out = [SeriesEvent(self.names[e.series][0], self.names[e.series][1], e.series, e) for e in events]
        out.sort(key=lambda se: (se.event.ts, se.series))
        return out
