"""Draw docs/img/alerting-gate.png: where the detector opens anomalies (what becomes an
incident) on NAB series, with the CUSUM alone and with the likelihood gate (needs
matplotlib, which is not a project dependency: pip install matplotlib).

    python docs/img/alerting_gate.py [--data ../shared/datasets/nab]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from server.detector.core import DetectorConfig  # noqa: E402
from server.eval import nab  # noqa: E402

FILES = ("realTweets/Twitter_volume_AAPL", "realKnownCause/nyc_taxi",
         "realKnownCause/machine_temperature_system_failure")


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/datasets/nab")
    ap.add_argument("--out", default=str(Path(__file__).with_name("alerting-gate.png")))
    args = ap.parse_args()
    root = Path(args.data)
    corpus = [s for s in nab.iter_corpus(root) if s.key.removesuffix(".csv") in FILES]
    _, plain = nab.run_detector_with_opens(corpus, DetectorConfig(event_gate=0.0))
    _, gated = nab.run_detector_with_opens(corpus, DetectorConfig())
    windows = nab.load_windows(root)
    fig, axes = plt.subplots(len(corpus), 1, figsize=(13, 2.5 * len(corpus)))
    for ax, series, o_plain, o_gated in zip(np.atleast_1d(axes), corpus, plain, gated, strict=True):
        v = series.values
        ax.plot(np.arange(v.size), v, lw=0.5, color="#333333")
        for lo, hi in nab.window_rows(series.timestamps, windows.get(series.key, [])):
            ax.axvspan(lo, hi, color="#2ca02c", alpha=0.18, lw=0)
        top, span = float(np.nanmax(v)), float(np.nanmax(v) - np.nanmin(v)) or 1.0
        p, g = np.flatnonzero(o_plain), np.flatnonzero(o_gated)
        ax.plot(p, np.full(p.size, top + 0.06 * span), "|", color="#999999", ms=9,
                label=f"CUSUM alone: {p.size} anomalies")
        ax.plot(g, np.full(g.size, top + 0.14 * span), "v", color="#d62728", ms=6,
                label=f"with the likelihood gate: {g.size}")
        ax.set_title(f"{series.key}   (green: labelled window)", fontsize=9, loc="left")
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, ncol=2,
                  borderaxespad=0.1)
        ax.set_ylim(top=top + 0.25 * span)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
