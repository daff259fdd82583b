"""Try a detector or grouping change on past data before shipping it: replay an exported
period (rca export) into a fresh embedded server with changed settings and print how
the incidents and rankings differ: incidents gained and lost, the rank of every
labelled cause before and after, and AC@1/3/5 before and after.

--set takes server settings as dotted names: any field of the settings groups
(grouping.gap_seconds, grouping.max_hops, pipeline.allowed_lateness_seconds, ...) and
detector.<field> for the streaming detector's parameters (detector.h, detector.persist,
detector.event_gate, ...; see docs/detection.md). The run starts from the settings the
exporting server had (recorded in the export's manifest) and changes only what --set
names. The exported ranking model is installed in the fresh server (--no-model: the
prior alone). Labels only score the runs; they are not replayed.

With --baseline replay the export is replayed twice, once with its own settings and once
with the changes, and the two replays are compared (the settings change alone, without
any difference between live arrival and replay).

Examples:
  rca backtest --export exports/nov --set grouping.gap_seconds=300
  rca backtest --export exports/nov --set detector.h=14 --set detector.persist=4 --json bt.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export", type=Path, required=True, help="export directory written by rca export")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a changed setting, e.g. grouping.gap_seconds=300 or detector.h=12 (repeatable)")
    p.add_argument("--baseline", choices=["export", "replay"], default="export",
                   help="compare with the exported incidents (default) or with a replay under unchanged settings")
    p.add_argument("--no-model", action="store_true", help="rank with the prior only (do not install model.bin)")
    p.add_argument("--tolerance", type=float, default=900.0,
                   help="seconds two incident onsets may differ and still be the same incident (default 900)")
    p.add_argument("--json", type=Path, default=None, help="also write the full report as JSON to this file")
    p.add_argument("--list-keys", action="store_true", help="print every key --set accepts and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from server.export.backtest import BacktestError, backtest, format_report, parse_overrides, tunable_keys

    if args.list_keys:
        print("\n".join(tunable_keys()))
        return 0

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        report = backtest(args.export, parse_overrides(args.overrides), baseline=args.baseline,
                          use_model=not args.no_model, tolerance_s=args.tolerance, log=log)
    except BacktestError as exc:
        print(f"rca backtest: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=1, default=str))
    return 0
