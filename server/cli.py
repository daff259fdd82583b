"""The ``rca`` command: serve, demo, sim, eval, tui, export, backtest.

Each sub-command lives in its own module and is imported lazily so ``rca --help`` is
fast and a missing optional dependency only affects the command that needs it.
Sub-command modules expose ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("server.commands.serve", "start the whole system in one process (embedded default), or the API only"),
    "worker": ("server.commands.worker", "run one pipeline stage as its own process (stack mode)"),
    "demo": ("server.commands.demo", "live demo: server + simulator, history backfill, a faulty change"),
    "sim": ("server.sim.cli", "run the simulated service fleet, or write seeded scenarios"),
    "tui": ("workbench.tui.cli", "terminal UI for live incident triage"),
    "ui": ("workbench.ui_cli", "Streamlit pages: incidents, evidence charts, explorer, changes, model"),
    "web": ("server.commands.web", "the web app (Next.js): install, build when needed, serve"),
    "export": ("server.commands.export", "export incident history to Parquet files (GET /export) for analysis"),
    "backtest": ("server.commands.backtest", "replay an export with changed settings; diff incidents and rankings"),
    "keys": ("server.commands.keys", "create, list and revoke API keys (roles ingest, read, label, admin)"),
}

EVAL_COMMANDS: dict[str, tuple[str, str]] = {
    "nab": ("server.eval.nab_cli", "score the streaming detector on the NAB benchmark"),
    "detect": ("server.eval.detect_cli", "detection quality on seeded simulated regressions"),
    "rca": ("server.eval.rca_cli", "suspect-ranking accuracy and learning curve on seeded scenarios"),
}


def _add(sub: argparse._SubParsersAction, name: str, module: str, help_text: str) -> None:  # type: ignore[type-arg]
    mod = importlib.import_module(module)
    p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(p)
    p.set_defaults(_run=mod.run)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rca",
        description="Root-cause analysis workbench for production regressions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'rca COMMAND --help' for the options of one command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Import only the module of the command being run (plus help listing for the rest).
    wanted = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        if wanted == name:
            _add(sub, name, module, help_text)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    ev = sub.add_parser("eval", help="evaluation commands that print measured quality")
    evsub = ev.add_subparsers(dest="eval_command", metavar="EVAL")
    wanted_eval = argv[1] if wanted == "eval" and len(argv) > 1 else None
    for name, (module, help_text) in EVAL_COMMANDS.items():
        if wanted_eval == name:
            _add(evsub, name, module, help_text)
        else:
            evsub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    run = getattr(args, "_run", None)
    if run is None:
        if args.command == "eval":
            parser.parse_args(["eval", "--help"])
        parser.print_help()
        return 2
    return int(run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
