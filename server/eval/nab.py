"""NAB corpus I/O: read data and windows, run the detector online, write and read results.

The pure scoring lives in :mod:`server.eval.nab_scoring`; this module only reads and
writes files and never passes labels or windows to the detector.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from server.detector.core import DetectorConfig, StreamingDetector, score_series
from server.eval.nab_scoring import ScoringFile

TS_FMT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class NabSeries:
    category: str
    name: str            # file stem, e.g. "nyc_taxi"
    timestamps: list[str]
    epoch: np.ndarray
    values: np.ndarray

    @property
    def key(self) -> str:
        return f"{self.category}/{self.name}.csv"


class NabDataError(RuntimeError):
    pass


def check_root(root: Path) -> None:
    if not (root / "data").is_dir() or not (root / "labels" / "combined_windows.json").is_file():
        raise NabDataError(
            f"NAB data not found at {root.resolve()} (expected data/ and labels/combined_windows.json); "
            "pass --data PATH to the NAB folder"
        )


def _parse_ts(s: str) -> float:
    """Epoch seconds of a NAB timestamp (``YYYY-MM-DD HH:MM:SS``); ISO 8601 (``T``, fractions,
    offsets; naive means UTC) and plain epoch seconds are accepted too."""
    text = s.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.strptime(text[:19], TS_FMT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise NabDataError(f"unreadable timestamp {s!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _ts_key(s: str) -> str:
    """The second a timestamp names, as NAB writes it (windows are matched on it)."""
    return s.strip().replace("T", " ")[:19]


def _value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")  # a blank or unreadable value is a missing point


def read_csv_columns(path: Path, value_col: str = "value") -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(timestamps, values, anomaly_score or None) of a NAB data or result CSV."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if "timestamp" not in header or value_col not in header:
            raise NabDataError(f"{path}: expected the columns timestamp and {value_col}, found {header}")
        ti, vi = header.index("timestamp"), header.index(value_col)
        si = header.index("anomaly_score") if "anomaly_score" in header else -1
        ts: list[str] = []
        vals: list[float] = []
        scores: list[float] = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(ti, vi, si):
                raise NabDataError(f"{path}:{line}: expected {len(header)} columns, found {len(row)}")
            ts.append(row[ti])
            vals.append(_value(row[vi]))
            if si >= 0:
                scores.append(_value(row[si]))
    return ts, np.asarray(vals, dtype=np.float64), (np.asarray(scores) if si >= 0 else None)


def iter_corpus(root: Path) -> Iterator[NabSeries]:
    check_root(root)
    for path in sorted((root / "data").glob("*/*.csv")):
        ts, vals, _ = read_csv_columns(path)
        try:
            epoch = np.asarray([_parse_ts(t) for t in ts], dtype=np.float64)
        except NabDataError as exc:
            raise NabDataError(f"{path}: {exc}") from None
        yield NabSeries(path.parent.name, path.stem, ts, epoch, vals)


def load_windows(root: Path) -> dict[str, list[tuple[str, str]]]:
    with (root / "labels" / "combined_windows.json").open() as fh:
        raw = json.load(fh)
    return {k: [(str(a), str(b)) for a, b in v] for k, v in raw.items()}


def window_rows(timestamps: list[str], windows: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    """Map window end timestamps to row indices by exact timestamp match."""
    first: dict[str, int] = {}
    for i, t in enumerate(timestamps):
        first.setdefault(_ts_key(t), i)
    out = []
    for a, b in windows:
        try:
            out.append((first[_ts_key(a)], first[_ts_key(b)]))
        except KeyError as exc:
            raise NabDataError(f"window end {exc} matches no row") from exc
    return tuple(out)


def monotone_times(epoch: np.ndarray) -> np.ndarray:
    """Strictly increasing event times (NAB has repeated and backward timestamps)."""
    out = epoch.astype(np.float64).copy()
    for i in range(1, out.size):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1e-3
    return out


def _score_one(args: tuple[NabSeries, DetectorConfig | None]) -> np.ndarray:
    series, config = args
    return score_series(monotone_times(series.epoch), series.values, config)


def run_detector(
    corpus: list[NabSeries],
    config: DetectorConfig | None = None,
    workers: int = 1,
    progress: Callable[[int, int, NabSeries], None] | None = None,
) -> list[np.ndarray]:
    """Online scores for every series (labels are never read here)."""
    jobs = [(s, config) for s in corpus]
    results: list[np.ndarray] = []
    if workers <= 1:
        for i, job in enumerate(jobs):
            results.append(_score_one(job))
            if progress:
                progress(i + 1, len(jobs), job[0])
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, res in enumerate(pool.map(_score_one, jobs)):
            results.append(res)
            if progress:
                progress(i + 1, len(jobs), corpus[i])
    return results


def run_detector_batched(corpus: list[NabSeries], config: DetectorConfig | None = None) -> list[np.ndarray]:
    """Online scores for every series at once (see :func:`run_detector_with_opens`)."""
    return run_detector_with_opens(corpus, config)[0]


def run_detector_with_opens(
    corpus: list[NabSeries], config: DetectorConfig | None = None, channels: dict[str, int] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Online scores for every series at once, and the anomaly opens (1.0 on the row where
    the detector opened an anomaly: what the server turns into incidents). One
    StreamingDetector holds all series and takes every series' rows in one call, each
    series in time order (the server's path). Series never share state, so each score
    still depends only on its own past points. ``channels``, when given, counts the opens
    by what opened them (shift, range, knn, ...)."""
    det = StreamingDetector(config, capacity=max(1, len(corpus)))
    lengths = [s.values.size for s in corpus]
    times = [monotone_times(s.epoch) for s in corpus]
    res = det.step(np.repeat(np.arange(len(corpus)), lengths), np.concatenate(times or [np.zeros(0)]),
                   np.concatenate([s.values for s in corpus] or [np.zeros(0)]))
    bounds = np.cumsum([0, *lengths])
    scores = [res.scores[bounds[k]: bounds[k + 1]].copy() for k in range(len(corpus))]
    opens = [np.zeros(n) for n in lengths]
    for ev in res.events:
        if ev.kind == "open":  # its row: the series' times are strictly increasing
            opens[ev.series][int(np.searchsorted(times[ev.series], ev.ts))] = 1.0
            if channels is not None:
                channels[ev.channel] = channels.get(ev.channel, 0) + 1
    return scores, opens


def write_results(out_dir: Path, corpus: list[NabSeries], scores: list[np.ndarray]) -> None:
    for series, sc in zip(corpus, scores, strict=True):
        d = out_dir / series.category
        d.mkdir(parents=True, exist_ok=True)
        with (d / f"{series.name}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value", "anomaly_score"])
            for t, v, s in zip(series.timestamps, series.values.tolist(), sc.tolist(), strict=True):
                w.writerow([t, repr(v) if not float(v).is_integer() else int(v), f"{s:.10g}"])


def scoring_files(root: Path, corpus: list[NabSeries], scores: list[np.ndarray]) -> list[ScoringFile]:
    windows = load_windows(root)
    return [
        ScoringFile(s.key, np.asarray(sc, dtype=np.float64), window_rows(s.timestamps, windows.get(s.key, [])))
        for s, sc in zip(corpus, scores, strict=True)
    ]


def load_result_scores(result_dir: Path, corpus: list[NabSeries], prefix: str = "") -> list[np.ndarray]:
    """Scores of a stored detector output (``<dir>/<category>/<prefix><name>.csv``)."""
    out = []
    for s in corpus:
        path = result_dir / s.category / f"{prefix}{s.name}.csv"
        ts, _, sc = read_csv_columns(path)
        if sc is None or len(ts) != len(s.timestamps):
            raise NabDataError(f"{path}: missing anomaly_score or wrong row count")
        out.append(sc)
    return out


def published(root: Path) -> dict[str, dict[str, float]]:
    path = root / "results" / "final_results.json"
    if not path.is_file():
        return {}
    with path.open() as fh:
        data: dict[str, dict[str, float]] = json.load(fh)
    return data


def stored_thresholds(root: Path, detector: str) -> dict[str, float]:
    with (root / "config" / "thresholds.json").open() as fh:
        data = json.load(fh)
    return {k: float(v["threshold"]) for k, v in data.get(detector, {}).items()}


def halves(corpus: list[NabSeries]) -> dict[str, list[int]]:
    """The split used to choose settings: the corpus files in sorted order, 0-based
    positions 1, 3, 5, ... ("odd") and 0, 2, 4, ... ("even"). Every choice was picked on
    one half and checked on the other (docs/detection.md)."""
    return {"odd": list(range(1, len(corpus), 2)), "even": list(range(0, len(corpus), 2))}


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
