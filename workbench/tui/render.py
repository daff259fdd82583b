"""Pure text rendering for the TUI: sparklines with change markers, bars, times.

No Textual and no I/O here: functions take plain values and return strings or Rich
``Text`` so they test in microseconds and render the same in every screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from workbench.client.models import Change, Incident, Suspect

SPARK = "▁▂▃▄▅▆▇█"
KIND_MARK = {"deployment": "D", "config_change": "C", "flag_change": "F"}
KIND_NAME = {"deployment": "deploy", "config_change": "config", "flag_change": "flag", "service": "ROOT"}


def fmt_time(dt: datetime | None) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_clock(dt: datetime | None) -> str:
    return "-" if dt is None else dt.astimezone(UTC).strftime("%H:%M:%S")


def fmt_delta(seconds: float) -> str:
    """Signed compact duration: ``-2m20s``, ``+45s``, ``-1h05m``."""
    sign = "-" if seconds < 0 else "+"
    s = int(round(abs(seconds)))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{sign}{s // 86400}d{(s % 86400) // 3600:02d}h"


def bar(value: float, width: int = 20) -> str:
    """A horizontal bar for a value in [0, 1] with eighth-block resolution."""
    v = 0.0 if not math.isfinite(value) else min(1.0, max(0.0, value))
    eighths = int(round(v * width * 8))
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    s = "█" * full + partial
    return s + "·" * (width - len(s))


def severity_text(sev: float) -> Text:
    style = "bold red" if sev >= 0.7 else "yellow" if sev >= 0.4 else "green"
    return Text(f"{sev:4.2f} ", style=style) + Text(bar(sev, 6), style=style)


def status_text(status: str) -> Text:
    return Text(status, style="bold red" if status.upper() == "OPEN" else "dim green")


def bucketize(ts: Sequence[float], values: Sequence[float], since: float, until: float,
              width: int) -> list[float | None]:
    """Average points into ``width`` equal time columns over [since, until]; empty columns are None."""
    if width <= 0 or until <= since:
        return []
    sums = [0.0] * width
    counts = [0] * width
    span = until - since
    for t, v in zip(ts, values, strict=False):
        if not math.isfinite(v) or t < since or t > until:
            continue
        i = min(width - 1, int((t - since) / span * width))
        sums[i] += v
        counts[i] += 1
    return [sums[i] / counts[i] if counts[i] else None for i in range(width)]


def sparkline(columns: Sequence[float | None]) -> str:
    vals = [v for v in columns if v is not None]
    if not vals:
        return " " * len(columns)
    lo, hi = min(vals), max(vals)
    rng = hi - lo
    out = []
    for v in columns:
        if v is None:
            out.append(" ")
        elif rng <= 0:
            out.append(SPARK[3])
        else:
            out.append(SPARK[min(7, int((v - lo) / rng * 7.999))])
    return "".join(out)


def column_of(t: float, since: float, until: float, width: int) -> int | None:
    if width <= 0 or until <= since or t < since or t > until:
        return None
    return min(width - 1, int((t - since) / (until - since) * width))


def marker_line(since: float, until: float, width: int, onset: float | None,
                marks: Sequence[tuple[float, str]]) -> str:
    """A line under a sparkline: ``^`` at the onset, a kind letter (D/C/F) at each change time."""
    line = [" "] * width
    if onset is not None:
        c = column_of(onset, since, until, width)
        if c is not None:
            line[c] = "^"
    for t, letter in marks:
        c = column_of(t, since, until, width)
        if c is not None:
            line[c] = letter if line[c] in (" ", letter) else "*"
    return "".join(line)


def sparkline_block(label: str, ts: Sequence[float], values: Sequence[float], *, since: float,
                    until: float, width: int, onset: float | None,
                    marks: Sequence[tuple[float, str]]) -> Text:
    """Two lines: ``label`` + sparkline, then the onset/change markers aligned under it."""
    cols = bucketize(ts, values, since, until, width)
    text = Text()
    text.append(sparkline(cols), style="cyan")
    text.append("\n")
    markers = marker_line(since, until, width, onset, marks)
    for ch in markers:
        text.append(ch, style="bold magenta" if ch == "^" else "bold yellow" if ch != " " else "")
    if label:
        text = Text(label + "\n", style="bold") + text
    return text


def evidence_text(evidence: dict[str, float], width: int = 20) -> Text:
    text = Text()
    if not evidence:
        return Text("no evidence reported", style="dim")
    name_w = max(len(k) for k in evidence)
    for k, v in sorted(evidence.items(), key=lambda kv: -kv[1]):
        style = "green" if v >= 0.66 else "yellow" if v >= 0.33 else "grey50"
        text.append(f"{k.replace('_', ' '):<{name_w}} ", style="bold")
        text.append(bar(v, width), style=style)
        text.append(f" {v:4.2f}\n")
    return text


def suspect_when(s: Suspect, onset: datetime) -> str:
    return "-" if s.ts is None else fmt_delta((s.ts - onset).total_seconds())


def change_summary(c: Change) -> str:
    f = c.fields
    if c.kind == "deployment":
        prev = f.get("previous_version")
        return f"{c.service} {prev + ' → ' if prev else ''}{f.get('version', '?')}"
    if c.kind == "config_change":
        return f"{c.service} {f.get('key', '?')}: {f.get('old_value')!s} → {f.get('new_value')!s}"
    if c.kind == "flag_change":
        pct = f.get("rollout_percent")
        return (f"{f.get('flag', '?')} {f.get('old_state')!s} → {f.get('new_state')!s}"
                f"{f' @ {pct}%' if pct is not None else ''} on {', '.join(c.services)}")
    return f"{c.kind} on {', '.join(c.services)}"


def service_details(s: Suspect) -> Text:
    """A root-service suspect: which service, when it first deviated, and its evidence."""
    t = Text()
    t.append(f"root service {s.service or '?'}", style="bold magenta")
    if s.ts is not None:
        t.append(f"  first deviated {fmt_time(s.ts)}")
    t.append("\nno change event behind it: look at its resources, dependencies and logs\n", style="dim")
    for k, v in sorted(s.evidence.items(), key=lambda kv: -kv[1]):
        t.append(f"  {k:16s} {bar(v, 10)} {v:4.2f}\n")
    return t


def change_details(c: Change | None, change_id: str | None = None) -> Text:
    """Everything known about one change: diff files, config old/new, flag rollout."""
    if c is None:
        if change_id is None:
            return Text("no change attached to this suspect", style="dim")
        return Text(f"change {change_id}: details not available", style="dim")
    f = c.fields
    t = Text()
    t.append(f"{KIND_NAME.get(c.kind, c.kind)} {c.id}", style="bold")
    t.append(f"  {fmt_time(c.ts)}  on {', '.join(c.services)}\n")
    if c.author:
        t.append(f"author: {c.author}\n")
    if c.description:
        t.append(f"{c.description}\n", style="italic")
    if c.kind == "deployment":
        t.append(f"version: {f.get('previous_version') or '?'} → {f.get('version', '?')}")
        if f.get("commit"):
            t.append(f"  commit {f['commit']}")
        t.append("\n")
        files = c.diff_files
        if files:
            t.append(f"diff: {len(files)} file(s)\n", style="bold")
            for d in files[:30]:
                t.append(f"  +{int(d.get('added') or 0):<5}", style="green")
                t.append(f"-{int(d.get('removed') or 0):<5}", style="red")
                t.append(f" {d.get('path', '')}\n")
            if len(files) > 30:
                t.append(f"  … {len(files) - 30} more\n", style="dim")
    elif c.kind == "config_change":
        t.append(f"key: {f.get('key', '?')}\n")
        t.append("old: ", style="bold")
        t.append(f"{f.get('old_value')!s}\n", style="red")
        t.append("new: ", style="bold")
        t.append(f"{f.get('new_value')!s}\n", style="green")
    elif c.kind == "flag_change":
        t.append(f"flag: {f.get('flag', '?')}  {f.get('old_state')!s} → {f.get('new_state')!s}\n")
        pct = f.get("rollout_percent")
        if pct is not None:
            try:
                share = float(pct) / 100.0
            except (TypeError, ValueError):
                share = 0.0
            t.append("rollout: ")
            t.append(bar(share, 20), style="yellow")
            t.append(f" {pct}%\n")
    else:
        for k, v in f.items():
            t.append(f"{k}: {v!s}\n")
    return t


def incident_header(inc: Incident) -> Text:
    t = Text()
    t.append(f"{inc.id} ", style="bold")
    t.append_text(status_text(inc.status))
    t.append(f"  {inc.title}\n", style="bold")
    t.append("severity ")
    t.append_text(severity_text(inc.severity))
    t.append(f"   onset {fmt_time(inc.started_at)}   detected {fmt_clock(inc.detected_at)}")
    if inc.resolved_at is not None:
        t.append(f"   resolved {fmt_clock(inc.resolved_at)}")
    t.append(f"\nservices: {', '.join(inc.services) or '-'}   anomalies: {inc.anomaly_count}")
    if inc.extra.get("no_convincing_change"):
        t.append("   RCA: no convincing change", style="bold yellow")
    return t


def incident_row(inc: Incident) -> tuple[Any, ...]:
    """Cells of one incident-list row (same order as ``INCIDENT_COLUMNS``)."""
    top = inc.top_suspect
    if top is None:
        top_s = "-"
    elif top.change_id is None and top.kind == "service":
        top_s = f"root {top.service or '?'} ({top.score:.2f})"
    else:
        top_s = f"{top.change_id or top.kind} ({top.score:.2f})"
    # Text everywhere: no markup parsing of titles (a "[db]" in a title stays text) and cheaper to measure
    return (Text(inc.id), status_text(inc.status), severity_text(inc.severity),
            Text(inc.started_at.astimezone(UTC).strftime("%m-%d %H:%M:%S")),
            Text(", ".join(inc.services[:4]) + (" …" if len(inc.services) > 4 else "")), Text(top_s),
            Text(inc.title))


# (key, label, width): fixed widths, so rows never need measuring and columns never jump
INCIDENT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ID", 9), ("status", "Status", 8), ("severity", "Severity", 11), ("started", "Onset (UTC)", 14),
    ("services", "Services", 20), ("top", "Top suspect", 20), ("title", "Title", 44),
)


def incident_sort_key(inc: Incident, mode: str) -> tuple[Any, ...]:
    """Ascending sort key: open incidents first, then by severity or by onset, newest first."""
    open_first = 0 if inc.is_open else 1
    t = -inc.started_at.timestamp()
    if mode == "severity":
        return (open_first, -inc.severity, t, inc.id)
    return (open_first, t, -inc.severity, inc.id)
