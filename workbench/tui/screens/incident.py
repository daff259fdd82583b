"""One incident: anomalies with sparklines around onset, ranked suspects, evidence, changes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker

from workbench.client import Anomaly, Change, ClientError, Incident, NotFound, RcaClient, Series, Suspect
from workbench.tui.guard import while_shown
from workbench.tui.render import (
    KIND_NAME,
    bar,
    change_details,
    evidence_text,
    fmt_clock,
    fmt_delta,
    incident_header,
    service_details,
    sparkline_block,
    suspect_when,
)
from workbench.tui.widgets.keyed_table import KeyedTable
from workbench.tui.widgets.status import ConnectionBar

if TYPE_CHECKING:
    from workbench.tui.app import RcaTui

MAX_SERIES = 12
PRE = timedelta(minutes=30)
POST = timedelta(minutes=15)
MARKED_SUSPECTS = 9
SUSPECT_COLUMNS = (("rank", "#", 3), ("score", "Score", 13), ("kind", "Kind", 6), ("change", "Change", 16),
                   ("service", "Service", 12), ("when", "vs onset", 9), ("label", "Label", 7))


@dataclass
class IncidentData:
    incident: Incident
    suspects: list[Suspect]
    anomalies: list[Anomaly]
    changes: dict[str, Change] = field(default_factory=dict)
    series: dict[tuple[str, str, str], Series] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # change id -> latest verdict
    looked_up: set[str] = field(default_factory=set)  # change ids already searched for

    def same_view(self, other: IncidentData | None) -> bool:
        """Nothing on screen would change (polls that find no news skip the redraw)."""
        return other is not None and (self.incident, self.suspects, self.anomalies, self.labels) == (
            other.incident, other.suspects, other.anomalies, other.labels)
    since: datetime | None = None
    until: datetime | None = None


def suspect_key(s: Suspect) -> str:
    """Row key and the "Change" cell: the change id, or ``root:<service>`` for a root-service suspect."""
    if s.change_id is None and s.kind == "service":
        return f"root:{s.service or s.id}"
    return s.change_id or s.id


def sparkline_window(inc: Incident, suspects: list[Suspect]) -> tuple[datetime, datetime]:
    """Onset - 30 min (earlier to include the top suspects' change times, up to 2 h) to onset + 15 min
    (later to cover the resolution, up to 2 h)."""
    onset = inc.started_at
    since = onset - PRE
    for s in suspects[:3]:
        if s.ts is not None and onset - timedelta(hours=2) <= s.ts < since:
            since = s.ts - timedelta(minutes=2)
    until = onset + POST
    if inc.resolved_at is not None and inc.resolved_at < onset + timedelta(hours=2):
        until = max(until, inc.resolved_at + timedelta(minutes=2))
    return since, until


def load_incident(client: RcaClient, incident_id: str, *, width: int,
                  previous: IncidentData | None = None) -> IncidentData:
    """Everything the view shows (runs in a thread worker). Reuses series/changes already loaded."""
    inc = client.incident(incident_id)
    suspects = client.suspects(incident_id)
    anomalies = client.anomalies(incident_id)
    data = IncidentData(incident=inc, suspects=suspects, anomalies=anomalies)
    try:
        for lb in sorted(client.labels(incident_id), key=lambda x: x.created_at or inc.started_at):
            if lb.change_id:
                data.labels[lb.change_id] = lb.verdict
            elif lb.extra.get("service"):
                data.labels[f"root:{lb.extra['service']}"] = lb.verdict
    except NotFound:
        pass  # a server without the labels extension
    if previous is not None:
        data.changes = dict(previous.changes)
        data.series = dict(previous.series)
        data.looked_up = set(previous.looked_up)
        data.since, data.until = previous.since, previous.until
    wanted = {s.change_id for s in suspects if s.change_id}
    if not wanted.issubset(data.changes.keys() | data.looked_up):
        data.looked_up |= wanted
        times = [s.ts for s in suspects if s.ts is not None]
        since = min(times, default=inc.started_at) - timedelta(seconds=1)
        until = max(times, default=inc.started_at) + timedelta(seconds=1)
        for c in client.changes(since=since, until=until, limit=max(500, 2 * len(suspects))):
            data.changes[c.id] = c
    if data.since is None or data.until is None:
        data.since, data.until = sparkline_window(inc, suspects)
    step = max(1.0, (data.until - data.since).total_seconds() / max(8, width))
    for a in anomalies[:MAX_SERIES]:
        key = series_key(a)
        if key in data.series:
            continue
        try:  # the anomalous series itself: its label set (e.g. one pod), not the service average
            data.series[key] = client.series(a.service, a.metric, since=data.since, until=data.until, step=step,
                                             labels=a.extra.get("labels") or None)
        except NotFound:
            data.series[key] = Series(service=a.service, metric=a.metric, points=[])
    return data


def series_key(a: Anomaly) -> tuple[str, str, str]:
    """An anomaly's series: service, metric and label set."""
    labels = a.extra.get("labels") or {}
    return a.service, a.metric, ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def suspect_row(s: Suspect, onset: datetime, label: str | None) -> tuple[Any, ...]:
    style = "green" if s.score >= 0.6 else "yellow" if s.score >= 0.3 else "grey50"
    score = Text(f"{s.score:4.2f} ", style=style) + Text(bar(s.score, 8), style=style)
    lab = Text("")
    if label == "cause":
        lab = Text("✔ cause", style="bold green")
    elif label == "not_cause":
        lab = Text("✘ not", style="red")
    kind = Text(KIND_NAME.get(s.kind, s.kind), style="bold magenta" if s.kind == "service" else "")
    return (Text(str(s.rank)), score, kind, Text(suspect_key(s)),
            Text(s.service or "-"), Text(suspect_when(s, onset)), lab)


def anomalies_text(data: IncidentData, width: int) -> Text:
    inc = data.incident
    if not data.anomalies:
        return Text("no anomalies recorded", style="dim")
    since, until = data.since or inc.started_at - PRE, data.until or inc.started_at + POST
    s0, s1 = since.timestamp(), until.timestamp()
    marks = [(s.ts.timestamp(), str(s.rank) if s.rank < 10 else "+")
             for s in data.suspects[:MARKED_SUSPECTS] if s.ts is not None]
    out = Text()
    out.append(f"window {fmt_clock(since)} … {fmt_clock(until)} UTC   ", style="dim")
    out.append("^", style="bold magenta")
    out.append(" onset   ", style="dim")
    out.append("1-9", style="bold yellow")
    out.append(" change time of suspect #n\n", style="dim")
    for i, a in enumerate(data.anomalies):
        arrow = "↑" if a.direction == "up" else "↓"
        ratio = f" (x{a.observed / a.baseline:.1f})" if a.baseline else ""
        labels = a.extra.get("labels") or {}
        out.append(f"\n{a.service} / {a.metric}", style="bold")
        if labels:
            out.append(" {" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}", style="bold")
        out.append(f"  {arrow} {a.baseline:.4g} → {a.observed:.4g}{ratio}  score {a.score:.1f}"
                   f"  onset {fmt_clock(a.started_at)} ({fmt_delta((a.started_at - inc.started_at).total_seconds())})"
                   f"{'' if a.ended_at is None else '  ended ' + fmt_clock(a.ended_at)}", style="")
        reason = a.extra.get("join_reason")
        if reason:
            out.append(f"  · joined: {reason}", style="dim")
        out.append("\n")
        if a.reason:
            out.append("  why: ", style="bold")
            out.append(f"{a.reason}\n")
        ser = data.series.get(series_key(a))
        if i >= MAX_SERIES or ser is None:
            continue
        if not ser.points:
            out.append("(no stored points in the window)\n", style="dim")
            continue
        out.append_text(sparkline_block("", ser.timestamps, ser.values, since=s0, until=s1, width=width,
                                        onset=a.started_at.timestamp(), marks=marks))
        out.append("\n")
    if len(data.anomalies) > MAX_SERIES:
        out.append(f"\n(sparklines for the first {MAX_SERIES} anomalies)", style="dim")
    return out


class IncidentScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("c", "label('cause')", "Cause"),
        Binding("n", "label('not_cause')", "Not cause"),
        Binding("l", "label_other", "Label other"),
        Binding("r", "rerun", "Rerun RCA"),
        Binding("o", "open_web", "Web"),
    ]

    def __init__(self, incident_id: str, incident: Incident | None = None) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.initial = incident
        self.data: IncidentData | None = None
        self.labels: dict[str, str] = {}
        self.last_rerun: str | None = None
        self._rerunning = False
        self._loader: Worker[None] | None = None

    @property
    def tui(self) -> RcaTui:
        return cast("RcaTui", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(incident_header(self.initial) if self.initial else f"{self.incident_id} loading…",
                     id="inc-header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static("Ranked suspects", classes="section-title")
                table = KeyedTable(id="suspects", key_column="change", cursor_type="row")
                for key, label, width in SUSPECT_COLUMNS:
                    table.add_column(label, key=key, width=width)
                yield table
            with VerticalScroll(id="detail"):
                yield Static("Evidence", classes="section-title")
                yield Static(id="explanation")
                yield Static(id="evidence")
                yield Static("Change", classes="section-title")
                yield Static(id="change")
        with VerticalScroll(id="anomalies"):
            yield Static("Anomalies", classes="section-title")
            yield Static("loading…", id="anoms")
        yield ConnectionBar(id="conn")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.tui.refresh_seconds, self.poll)
        self.poll()

    def spark_width(self) -> int:
        w = self.size.width or 80
        return max(20, min(120, w - 4))

    def poll(self) -> None:
        if not self.is_current or self._rerunning:
            return
        if self._loader is not None and self._loader.is_running:
            return  # never stack requests on a slow server
        self._loader = self._load(self.spark_width())

    @work(thread=True, group="incident-view")
    def _load(self, width: int) -> None:
        try:
            data = self.tui.request(lambda c: load_incident(c, self.incident_id, width=width,
                                                            previous=self.data))
        except NotFound:
            self.app.call_from_thread(self._gone)
            return
        except ClientError:
            return
        self.app.call_from_thread(self._apply, data, width)

    @while_shown
    def _gone(self) -> None:
        self.query_one("#anoms", Static).update(Text(f"incident {self.incident_id} not found", style="red"))

    @while_shown
    def _apply(self, data: IncidentData, width: int, force: bool = False) -> None:
        if not force and data.same_view(self.data):
            self.data = data
            return
        self.data = data
        self.query_one("#inc-header", Static).update(incident_header(data.incident))
        self._sync_suspects()
        self.query_one("#anoms", Static).update(anomalies_text(data, width))
        self._show_selected()

    def _sync_suspects(self) -> None:
        if self.data is None:
            return
        onset = self.data.incident.started_at
        table = self.query_one("#suspects", KeyedTable)
        labels = {**self.data.labels, **self.labels}
        table.sync([(suspect_key(s), suspect_row(s, onset, labels.get(suspect_key(s))))
                    for s in self.data.suspects])

    def selected(self) -> Suspect | None:
        if self.data is None:
            return None
        key = self.query_one("#suspects", KeyedTable).cursor_key()
        return next((s for s in self.data.suspects if suspect_key(s) == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_selected()

    def _show_selected(self) -> None:
        s = self.selected()
        expl = self.query_one("#explanation", Static)
        if s is None:
            no_convincing = bool(self.data and self.data.incident.extra.get("no_convincing_change"))
            expl.update(Text("RCA found no convincing change" if no_convincing else
                             "no suspects (yet)", style="dim"))
            self.query_one("#evidence", Static).update("")
            self.query_one("#change", Static).update("")
            return
        t = Text(f"#{s.rank} {suspect_key(s)}  score {s.score:.2f}\n", style="bold")
        t.append(s.explanation or "(no explanation)", style="italic")
        expl.update(t)
        self.query_one("#evidence", Static).update(evidence_text(s.evidence, width=16))
        change = self.data.changes.get(s.change_id) if self.data and s.change_id else None
        if s.change_id is None and s.kind == "service":
            self.query_one("#change", Static).update(service_details(s))
        else:
            self.query_one("#change", Static).update(change_details(change, s.change_id))

    # ---- actions ---------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_open_web(self) -> None:
        self.tui.open_in_web(self.incident_id)

    def action_label(self, verdict: str) -> None:
        s = self.selected()
        if s is None:
            self.notify("No suspect selected", severity="warning")
            return
        self._send_label(verdict, s.change_id, None if s.change_id else s.id)

    def action_label_other(self) -> None:
        from workbench.tui.screens.modals import LabelChangePicker

        inc = self.data.incident if self.data else self.initial
        onset = inc.started_at if inc else None

        def chosen(change_id: Any) -> None:
            if isinstance(change_id, str) and change_id.strip():
                self._send_label("cause", change_id.strip(), None)

        self.app.push_screen(LabelChangePicker(onset), chosen)

    @work(thread=True, group="label")
    def _send_label(self, verdict: str, change_id: str | None, suspect_id: str | None) -> None:
        try:
            self.tui.request(lambda c: c.label(self.incident_id, verdict=verdict, change_id=change_id,
                                               suspect_id=suspect_id, author=self.tui.author))
        except ClientError:
            return
        key = change_id or suspect_id or ""
        if self.data is not None and not change_id:
            s = next((x for x in self.data.suspects if x.id == suspect_id), None)
            if s is not None:
                key = suspect_key(s)
        self.app.call_from_thread(self._labelled, verdict, key)

    @while_shown
    def _labelled(self, verdict: str, key: str) -> None:
        self.labels[key] = verdict
        self._sync_suspects()
        self.notify(f"{key} labelled {'the cause' if verdict == 'cause' else 'not the cause'} of "
                    f"{self.incident_id} · press r to rerun RCA", title="Label sent")

    def action_rerun(self) -> None:
        if self._rerunning:
            return
        self._rerunning = True
        self.notify(f"Rerunning RCA for {self.incident_id}…")
        self._rerun(self.spark_width())

    @work(thread=True, group="incident-rerun")
    def _rerun(self, width: int) -> None:
        before = [(suspect_key(s), round(s.score, 6)) for s in self.data.suspects] if self.data else []
        data: IncidentData | None = None
        try:
            self.tui.request(lambda c: c.rerun_rca(self.incident_id))
            deadline = time.monotonic() + 15.0
            while True:
                # the rerun is queued behind other work: wait for the pipeline to drain (or a change)
                idle = self.tui.request(lambda c: c.health()).pending == 0
                data = self.tui.request(lambda c: load_incident(c, self.incident_id, width=width,
                                                                previous=self.data))
                after = [(suspect_key(s), round(s.score, 6)) for s in data.suspects]
                if after != before or idle or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        except ClientError:
            self.app.call_from_thread(self._rerun_done, None, "")
            return
        if [k for k, _ in after] != [k for k, _ in before]:
            outcome = "ranking changed"
        elif after != before:
            outcome = "scores updated, same order"
        else:
            outcome = "ranking unchanged"
        self.app.call_from_thread(self._rerun_done, data, outcome)

    @while_shown
    def _rerun_done(self, data: IncidentData | None, outcome: str) -> None:
        self._rerunning = False
        if data is None:
            return
        self._apply(data, self.spark_width(), force=True)
        top = data.suspects[0] if data.suspects else None
        top_s = f"top suspect now {suspect_key(top)} ({top.score:.2f})" if top else "no suspects"
        self.last_rerun = outcome
        self.notify(f"RCA rerun done: {outcome}; {top_s}",
                    title="RCA rerun")
