"""Draw docs/img/nab-examples.png: NAB series, their labelled windows and the detector's
score (needs matplotlib, which is not a project dependency: pip install matplotlib).

    python docs/img/nab_examples.py [--data ../shared/datasets/nab]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from server.detector.core import DetectorConfig  # noqa: E402
from server.eval import nab  # noqa: E402

FILES = (
    "realKnownCause/machine_temperature_system_failure",
    "realKnownCause/nyc_taxi",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533",
    "realTweets/Twitter_volume_AAPL",
)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/datasets/nab")
    ap.add_argument("--out", default=str(Path(__file__).with_name("nab-examples.png")))
    args = ap.parse_args()
    root = Path(args.data)
    corpus = [s for s in nab.iter_corpus(root) if s.key.removesuffix(".csv") in FILES]
    scores = nab.run_detector_batched(corpus, DetectorConfig())
    windows = nab.load_windows(root)
    fig, axes = plt.subplots(len(corpus), 1, figsize=(13, 2.4 * len(corpus)))
    for ax, series, sc in zip(np.atleast_1d(axes), corpus, scores, strict=True):
        x = np.arange(series.values.size)
        ax.plot(x, series.values, lw=0.5, color="#333333")
        for lo, hi in nab.window_rows(series.timestamps, windows.get(series.key, [])):
            ax.axvspan(lo, hi, color="#2ca02c", alpha=0.18, lw=0)
        alerts = np.flatnonzero(sc >= 0.5)
        ax.plot(alerts, series.values[alerts], "v", color="#d62728", ms=6)
        ax.set_title(f"{series.key}   (green: labelled window, red: score >= 0.5)", fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax2 = ax.twinx()
        ax2.plot(x, sc, lw=0.4, color="#d62728", alpha=0.5)
        ax2.set_ylim(0, 1.05)
        ax2.set_yticks([0, 0.5, 1])
        ax2.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
