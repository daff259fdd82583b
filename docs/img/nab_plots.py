"""Draw the NAB figures of docs/detection.md (needs matplotlib, which is not a project
dependency: pip install matplotlib):

* nab-examples.png: NAB series, their labelled windows and the detector's score;
* alerting-path.png: where the detector opens anomalies (what becomes an incident): the
  CUSUM alone, the previous release (CUSUM behind the likelihood gate) and this release.

    python docs/img/nab_plots.py [--data ../shared/datasets/nab]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from server.detector.core import DetectorConfig  # noqa: E402
from server.eval import nab  # noqa: E402

HERE = Path(__file__).parent
EXAMPLES = ("realKnownCause/machine_temperature_system_failure", "realKnownCause/nyc_taxi",
            "realAWSCloudwatch/ec2_cpu_utilization_5f5533", "realTweets/Twitter_volume_AAPL")
GATE = ("realTweets/Twitter_volume_AAPL", "realKnownCause/nyc_taxi",
        "realKnownCause/machine_temperature_system_failure")


def _panel(ax: Any, series: nab.NabSeries, windows: dict[str, list[tuple[str, str]]], title: str) -> None:
    ax.plot(np.arange(series.values.size), series.values, lw=0.5, color="#333333")
    for lo, hi in nab.window_rows(series.timestamps, windows.get(series.key, [])):
        ax.axvspan(lo, hi, color="#2ca02c", alpha=0.18, lw=0)
    ax.set_title(f"{series.key}   ({title})", fontsize=9, loc="left")
    ax.tick_params(labelsize=7)


def examples(plt: Any, root: Path, out: Path) -> None:
    corpus = [s for s in nab.iter_corpus(root) if s.key.removesuffix(".csv") in EXAMPLES]
    scores = nab.run_detector_batched(corpus, DetectorConfig())
    windows = nab.load_windows(root)
    fig, axes = plt.subplots(len(corpus), 1, figsize=(13, 2.4 * len(corpus)))
    for ax, series, sc in zip(np.atleast_1d(axes), corpus, scores, strict=True):
        _panel(ax, series, windows, "green: labelled window, red: score >= 0.5")
        alerts = np.flatnonzero(sc >= 0.5)
        ax.plot(alerts, series.values[alerts], "v", color="#d62728", ms=6)
        ax2 = ax.twinx()
        ax2.plot(np.arange(sc.size), sc, lw=0.4, color="#d62728", alpha=0.5)
        ax2.set_ylim(0, 1.05)
        ax2.set_yticks([0, 0.5, 1])
        ax2.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


PREVIOUS = DetectorConfig(score_open=False, h_strong=30.0, gate_rate=0.0, settle=0)


def alerting_path(plt: Any, root: Path, out: Path) -> None:
    corpus = [s for s in nab.iter_corpus(root) if s.key.removesuffix(".csv") in GATE]
    _, plain = nab.run_detector_with_opens(corpus, replace(PREVIOUS, event_gate=0.0))
    _, gated = nab.run_detector_with_opens(corpus, PREVIOUS)
    _, now = nab.run_detector_with_opens(corpus, DetectorConfig())
    windows = nab.load_windows(root)
    fig, axes = plt.subplots(len(corpus), 1, figsize=(13, 2.6 * len(corpus)))
    for ax, series, o_plain, o_gated, o_now in zip(np.atleast_1d(axes), corpus, plain, gated, now, strict=True):
        _panel(ax, series, windows, "green: labelled window")
        v = series.values
        top, span = float(np.nanmax(v)), float(np.nanmax(v) - np.nanmin(v)) or 1.0
        p, g, w = np.flatnonzero(o_plain), np.flatnonzero(o_gated), np.flatnonzero(o_now)
        ax.plot(p, np.full(p.size, top + 0.06 * span), "|", color="#999999", ms=9,
                label=f"CUSUM alone: {p.size} anomalies")
        ax.plot(g, np.full(g.size, top + 0.14 * span), "v", color="#ff7f0e", ms=5,
                label=f"previous release (CUSUM + likelihood gate): {g.size}")
        ax.plot(w, np.full(w.size, top + 0.22 * span), "v", color="#d62728", ms=6,
                label=f"this release: {w.size}")
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, ncol=3,
                  borderaxespad=0.1)
        ax.set_ylim(top=top + 0.32 * span)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/datasets/nab")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(args.data)
    examples(plt, root, HERE / "nab-examples.png")
    alerting_path(plt, root, HERE / "alerting-path.png")


if __name__ == "__main__":
    main()
