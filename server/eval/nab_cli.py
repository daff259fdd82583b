"""Score the project's streaming detector on the Numenta Anomaly Benchmark (NAB).

Runs the same detector the server uses over every NAB series strictly online (each
score uses only points at or before it; labels and windows are never shown to the
detector), writes NAB-format results (DIR/<category>/<name>.csv with
timestamp,value,anomaly_score), and scores them with the project's independent NAB
scorer (standard, low-FP and low-FN profiles; the threshold per profile is the
corpus-wide optimum found by an exhaustive sweep, as in NAB itself, so it is an oracle
threshold, not a deployable alerting threshold; --threshold 0.5 scores at the detector's
own alert level instead, which needs no labels).

  rca eval nab --data ../shared/datasets/nab --out /tmp/nab-results [--threshold 0.5]
  rca eval nab --score-only DIR [--prefix numenta_] [--stored-thresholds numenta]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from server.detector.core import DetectorConfig
from server.eval import nab
from server.eval.nab_scoring import (
    PROFILES,
    ProfileResult,
    ScoringFile,
    build_table,
    normalise,
    raw_score,
    score_corpus,
)

PROFILE_LABELS = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="../shared/datasets/nab", help="NAB folder (data/, labels/, results/)")
    parser.add_argument("--out", default="nab-results", help="where to write the result CSVs")
    parser.add_argument("--per-series", action="store_true",
                        help="score one series at a time with score_series (same scores as the default, "
                             "which steps all series together in one detector, like the server)")
    parser.add_argument("--workers", type=int, default=nab.default_workers(), help="processes for --per-series")
    parser.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                        help="override one DetectorConfig field for an ablation (repeatable), e.g. "
                             "--set knn_stride=8 --set seasonal_score=false; default: the server's detector")
    parser.add_argument("--score-only", metavar="DIR", help="only score an existing result folder")
    parser.add_argument("--prefix", default="", help="file-name prefix of results in --score-only (e.g. numenta_)")
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="score every profile at this fixed threshold (e.g. 0.5, the detector's own alert "
                             "level: a deployable threshold chosen without labels) instead of sweeping")
    parser.add_argument("--stored-thresholds", metavar="DETECTOR",
                        help="score at config/thresholds.json thresholds of DETECTOR instead of sweeping")


def _print(msg: str) -> None:
    print(msg, flush=True)


def category_scores(files: list[ScoringFile], thresholds: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per category: normalised score at the corpus-wide thresholds (subset null/perfect)."""
    cats = sorted({f.name.split("/")[0] for f in files})
    out: dict[str, dict[str, float]] = {}
    for cat in cats:
        sub = [f for f in files if f.name.startswith(cat + "/")]
        table = build_table(sub)
        out[cat] = {}
        for name, prof in PROFILES.items():
            if table.n_windows == 0:
                raw = raw_score(table, prof, thresholds[name])
                out[cat][name] = raw  # no windows: raw FP cost only (0 is best)
            else:
                out[cat][name] = normalise(raw_score(table, prof, thresholds[name]), prof, table.n_windows)
    return out


def report(files: list[ScoringFile], results: dict[str, ProfileResult], published: dict[str, dict[str, float]],
           label: str = "this detector", extra: dict[str, dict[str, float]] | None = None) -> None:
    thresholds = {k: v.threshold for k, v in results.items()}
    _print("\nPer category (at the corpus-wide thresholds; categories without windows show the raw FP cost):")
    _print(f"  {'category':<24}" + "".join(f"{PROFILE_LABELS[p]:>10}" for p in PROFILES))
    for cat, vals in category_scores(files, thresholds).items():
        _print(f"  {cat:<24}" + "".join(f"{vals[p]:>10.2f}" for p in PROFILES))
    _print("\nPer profile:")
    for name, r in results.items():
        _print(f"  {PROFILE_LABELS[name]:<10} score {r.score:7.2f}   raw {r.raw:9.4f}   threshold {r.threshold:.6f}")
    rows = [(label, {k: v.score for k, v in results.items()})]
    rows += list((extra or {}).items())
    ours = {name for name, _ in rows}
    rows += [(k, v) for k, v in published.items()]
    rows.sort(key=lambda kv: -kv[1].get("standard", 0.0))
    _print("\nBeside the published scoreboard (results/final_results.json):")
    _print(f"  {'detector':<30}" + "".join(f"{PROFILE_LABELS[p]:>10}" for p in PROFILES))
    for name, vals in rows:
        mark = " <==" if name in ours else ""
        _print(f"  {name:<30}" + "".join(f"{vals.get(p, float('nan')):>10.2f}" for p in PROFILES) + mark)


def half_scores(files: list[ScoringFile], corpus: list[nab.NabSeries],
                thresholds: dict[str, float] | None) -> dict[str, dict[str, float]]:
    """Normalised scores of each half of the corpus (the split settings were chosen by)."""
    out: dict[str, dict[str, float]] = {}
    for half, idx in nab.halves(corpus).items():
        sub = [files[i] for i in idx]
        if build_table(sub).n_windows == 0:
            continue  # a half without windows has no normalised score (tiny corpora only)
        res = score_corpus(sub, thresholds)
        out[half] = {k: v.score for k, v in res.items()}
    return out


def report_opens(root: Path, corpus: list[nab.NabSeries], opens: list[np.ndarray],
                 channels: dict[str, int]) -> dict[str, float]:
    """The alerting path: the detector's anomaly opens (what the server turns into
    incidents) scored as NAB detections at threshold 0.5. Returns the scores per profile."""
    n_opens = int(sum(o.sum() for o in opens))
    n_points = sum(o.size for o in opens)
    fixed = {name: 0.5 for name in PROFILES}
    files = nab.scoring_files(root, corpus, opens)
    res = score_corpus(files, fixed)
    halves = half_scores(files, corpus, fixed)
    _print("\nAlerting path (anomaly opens, what becomes incidents, scored as detections):")
    _print("  " + "   ".join(f"{PROFILE_LABELS[k]} {v.score:.2f}" for k, v in res.items())
           + f"   ({n_opens} opens in {n_points:,} points: one per {n_points / max(n_opens, 1):,.0f} points)")
    if halves:
        _print("  by half:  " + "   ".join(f"{h} files {v['standard']:.2f}" for h, v in halves.items())
               + " (standard)")
    _print("  opened by: " + ", ".join(f"{k} {v}" for k, v in sorted(channels.items(), key=lambda kv: -kv[1])))
    return {k: v.score for k, v in res.items()}


SPLIT_NOTE = ("Split: the corpus files in sorted order, 0-based positions 1, 3, 5, ... (odd) and 0, 2, 4, ... "
              "(even).\nEvery setting of the detector was picked on one half and checked on the other "
              "(docs/detection.md);\nno setting was chosen on the whole corpus, and labels are read only by the "
              "scorer, after the run.")


def config_with_overrides(overrides: list[str]) -> DetectorConfig:
    """The default DetectorConfig with ``FIELD=VALUE`` overrides (typed like the field)."""
    defaults = DetectorConfig()
    known = {f.name: f for f in dataclasses.fields(DetectorConfig)}
    changes: dict[str, object] = {}
    for item in overrides:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(known))}")
        current = getattr(defaults, name)
        try:
            if isinstance(current, bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value: object = raw.lower() in ("true", "1")
            else:
                value = type(current)(raw)
        except ValueError:
            raise ValueError(f"--set {item!r}: {raw!r} is not a valid {type(current).__name__}") from None
        changes[name] = value
    config = dataclasses.replace(defaults, **changes)  # type: ignore[arg-type]
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except nab.NabDataError as exc:  # unreadable corpus, labels or results: say which and where
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    root = Path(args.data)
    nab.check_root(root)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        print("error: --threshold must be in [0, 1]", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    opens: list[np.ndarray] | None = None
    channels: dict[str, int] = {}
    corpus = list(nab.iter_corpus(root))
    n_points = sum(s.values.size for s in corpus)
    _print(f"NAB: {len(corpus)} series, {n_points} points from {root}")
    if args.score_only:
        scores = nab.load_result_scores(Path(args.score_only), corpus, prefix=args.prefix)
        label = Path(args.score_only).name
    else:
        def progress(i: int, total: int, s: nab.NabSeries) -> None:
            _print(f"  [{i:2d}/{total}] {s.key} ({s.values.size} points, {time.perf_counter() - t0:6.1f} s)")

        try:
            config = config_with_overrides(args.set)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        _print(f"  detector: the server's DetectorConfig{' with ' + ', '.join(args.set) if args.set else ''}")
        t1 = time.perf_counter()
        if args.per_series:
            scores = nab.run_detector(corpus, config=config, workers=args.workers, progress=progress)
            how = f"one series at a time, {args.workers} workers"
        else:
            _print(f"  scoring all {len(corpus)} series together (each series only sees its own past points)")
            scores, opens = nab.run_detector_with_opens(corpus, config, channels)
            how = "all series in one detector"
        dt = time.perf_counter() - t1
        _print(f"detector: {n_points} points in {dt:.1f} s ({n_points / dt:,.0f} points/s, {how})")
        out = Path(args.out)
        nab.write_results(out, corpus, scores)
        _print(f"results written to {out.resolve()}")
        label = "rca" + (f" ({', '.join(args.set)})" if args.set else "")
    if any(((s < 0) | (s > 1) | ~np.isfinite(s)).any() for s in scores):
        print("error: scores outside [0, 1]", file=sys.stderr)
        return 1
    files = nab.scoring_files(root, corpus, scores)
    thresholds = nab.stored_thresholds(root, args.stored_thresholds) if args.stored_thresholds else None
    if args.threshold is not None:
        thresholds = {name: args.threshold for name in PROFILES}
    results = score_corpus(files, thresholds)
    halves = half_scores(files, corpus, thresholds)
    extra: dict[str, dict[str, float]] = {}
    if opens is not None:
        extra[f"{label}: alerting path"] = report_opens(root, corpus, opens, channels)
    report(files, results, nab.published(root), label=label + (": per-point score" if opens is not None else ""),
           extra=extra)
    if halves:
        _print("\nPer-point score by half:  "
               + "   ".join(f"{h} files {v['standard']:.2f}" for h, v in halves.items())
               + " (standard" + (", threshold swept per half)" if thresholds is None else ")"))
    _print(SPLIT_NOTE)
    _print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return 0
