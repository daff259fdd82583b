"""Terminal UI for live incident triage.

Shows the incident list (live: new incidents appear and resolved ones move without a
key press), an incident view with anomalies, ranked suspects, evidence and change
details, and keys to label causes and rerun RCA. Press ? in the app for every key.

Examples:
  rca tui                                  # server on http://127.0.0.1:8000
  rca tui --url http://rca.internal:8000 --web-url https://rca.internal
"""

from __future__ import annotations

import argparse
import os

from workbench.client import DEFAULT_URL
from workbench.tui.app import DEFAULT_WEB_URL, RcaTui


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    parser.add_argument("--web-url", default=DEFAULT_WEB_URL,
                        help=f"web app URL opened by the o key (default {DEFAULT_WEB_URL})")
    parser.add_argument("--refresh", type=float, default=2.0, metavar="SECONDS",
                        help="poll interval of the live views (default 2)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="per-request timeout before the server is reported slow (default 5)")
    parser.add_argument("--key", default=None,
                        help="API key sent as a bearer token when the server requires keys (default: env RCA_API_KEY)")
    parser.add_argument("--author", default=None, help="author recorded on labels (default: $USER)")
    parser.add_argument("--max-incidents", type=int, default=5000,
                        help="most incidents loaded into the list (default 5000)")


def run_tui(url: str = DEFAULT_URL, *, web_url: str = DEFAULT_WEB_URL, refresh: float = 2.0,
            timeout: float = 5.0, author: str | None = None, max_incidents: int = 5000) -> int:
    """Run the TUI in the foreground until the user quits (used by ``rca tui`` and ``rca demo``)."""
    RcaTui(url, web_url=web_url, refresh=refresh, timeout=timeout, author=author,
           max_incidents=max_incidents).run()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.key:
        os.environ["RCA_API_KEY"] = args.key  # workbench.client reads it for every request
    return run_tui(args.url, web_url=args.web_url, refresh=args.refresh, timeout=args.timeout,
                   author=args.author, max_incidents=args.max_incidents)
