"""The live incident list: filter by status and service, sort by severity or time."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker

from workbench.client import ClientError, Incident, RcaClient
from workbench.tui.guard import while_shown
from workbench.tui.listdiff import ListDelta, diff_incidents, sort_order
from workbench.tui.render import INCIDENT_COLUMNS
from workbench.tui.widgets.keyed_table import KeyedTable
from workbench.tui.widgets.status import ConnectionBar

if TYPE_CHECKING:
    from workbench.tui.app import RcaTui

def _page(c: RcaClient, *, status: str | None, service: str | None, limit: int, offset: int) -> list[Incident]:
    return c.incidents(status=status, service=service, limit=limit, offset=offset)


STATUS_CYCLE: tuple[str | None, ...] = (None, "OPEN", "RESOLVED")
PAGE = 500
HEAD = 200  # newest incidents fetched on every tick
WINDOW = 300  # rows in the table at once ([ and ] page through the rest)


class IncidentListScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "open_incident", "Open", show=True),
        Binding("s", "cycle_status", "Status filter"),
        Binding("f", "pick_service", "Service filter"),
        Binding("t", "toggle_sort", "Sort"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", key_display="[", show=False),
        Binding("r", "rerun", "Rerun RCA"),
        Binding("o", "open_web", "Web"),
        Binding("g", "refresh_now", "Refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter: str | None = None
        self.service_filter: str | None = None
        self.sort_mode = "severity"
        self.incidents: dict[str, Incident] = {}
        self.loaded = False
        self.polls = 0  # completed polls
        self.last_changes = 0  # rows added, removed or changed by the last update
        self.order: list[str] = []  # every incident id, in display order
        self.window_start = 0  # first row of ``order`` shown in the table
        self._cells: dict[str, tuple[Any, ...]] = {}  # table cells of every incident
        self._generation = 0
        self._last_full = 0.0
        self._full_seconds = 0.0
        self._timer: Timer | None = None
        self._worker: Worker[None] | None = None

    @property
    def tui(self) -> RcaTui:
        return cast("RcaTui", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="filters")
        table = KeyedTable(id="incidents", key_column="id", cursor_type="row", zebra_stripes=True)
        for key, label, width in INCIDENT_COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static("loading incidents…", id="empty")
        yield ConnectionBar(id="conn")
        yield Footer()

    def on_mount(self) -> None:
        self._show_filters()
        self._timer = self.set_interval(self.tui.refresh_seconds, self.poll)
        self.poll()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.poll()

    # ---- polling ---------------------------------------------------------------------
    def poll(self) -> None:
        """Every tick: the newest page (new incidents appear at once). The whole filtered list
        (resolutions, removals) when it fits in that page, else every few ticks, less often the
        longer a full fetch takes, so a huge list never keeps the app busy."""
        if self.loaded and not self.is_current:
            return  # the incident view polls for itself; catch up on resume
        if self._worker is not None and self._worker.is_running:
            return  # never stack requests on a slow server
        due = max(5 * self.tui.refresh_seconds, 10 * self._full_seconds)
        full = not self.loaded or time.monotonic() - self._last_full >= due
        self._worker = self._fetch(self.status_filter, self.service_filter, self._generation, full,
                                   self.incidents, self.sort_mode)

    @work(thread=True, group="incident-list")
    def _fetch(self, status: str | None, service: str | None, generation: int, full: bool,
               base: dict[str, Incident], sort_mode: str) -> None:
        limit = self.tui.max_incidents
        t0 = time.monotonic()
        try:
            head = self.tui.request(partial(_page, status=status, service=service, limit=min(HEAD, limit),
                                            offset=0))
            found = list(head)
            if len(head) < min(HEAD, limit):
                full = True  # the newest page is the whole list
            elif full:
                while len(found) < limit:
                    want, offset = min(PAGE, limit - len(found)), len(found)
                    page = self.tui.request(partial(_page, status=status, service=service, limit=want,
                                                    offset=offset))
                    found.extend(page)
                    if len(page) < want:
                        break
        except ClientError:
            return
        delta = diff_incidents(base, found, full=full, sort_mode=sort_mode)
        self.app.call_from_thread(self._apply, delta, base, generation, time.monotonic() - t0 if full else None)

    @while_shown
    def _apply(self, delta: ListDelta, base: dict[str, Incident], generation: int,
               full_seconds: float | None) -> None:
        if generation != self._generation or base is not self.incidents:
            return  # filters changed, or another poll landed first: the next poll redoes it
        self.polls += 1
        if full_seconds is not None:
            self._last_full, self._full_seconds = time.monotonic(), full_seconds
        new_ids = delta.new_ids if self.loaded else []
        self.incidents = delta.incidents
        self.loaded = True
        for k in delta.removes:
            self._cells.pop(k, None)
        self._cells.update(delta.upserts)
        self.order = delta.order if delta.sort_mode == self.sort_mode else sort_order(self.incidents,
                                                                                       self.sort_mode)
        self.last_changes = self._show_window()
        self._after_update()
        if new_ids:
            self.notify(f"{len(new_ids)} new incident(s): {', '.join(new_ids[:3])}"
                        f"{' …' if len(new_ids) > 3 else ''}", title="New incidents")

    def _show_window(self) -> int:
        """Put rows ``window_start .. +WINDOW`` of the sorted list in the table (in place)."""
        n = len(self.order)
        last_page = max(0, (n - 1) // WINDOW * WINDOW)
        self.window_start = min(max(0, self.window_start), last_page)
        keys = self.order[self.window_start:self.window_start + WINDOW]
        return self.query_one("#incidents", KeyedTable).sync([(k, self._cells[k]) for k in keys])

    def _after_update(self) -> None:
        empty = self.query_one("#empty", Static)
        empty.display = not self.incidents
        if not self.incidents:
            empty.update("no incidents match the filters" if self._filtered else "no incidents yet")
        self._show_filters()

    @property
    def _filtered(self) -> bool:
        return self.status_filter is not None or self.service_filter is not None

    def _show_filters(self) -> None:
        n_open = sum(1 for i in self.incidents.values() if i.is_open)
        t = Text()
        t.append(" status: ", style="dim")
        t.append(self.status_filter or "all", style="bold")
        t.append("   service: ", style="dim")
        t.append(self.service_filter or "all", style="bold")
        t.append("   sort: ", style="dim")
        t.append("severity" if self.sort_mode == "severity" else "time", style="bold")
        if self.loaded:
            t.append(f"   {len(self.incidents)} incidents, {n_open} open", style="dim")
        if len(self.order) > WINDOW:
            end = min(len(self.order), self.window_start + WINDOW)
            t.append(f"   rows {self.window_start + 1}–{end} of {len(self.order)}", style="bold")
            t.append("  ([ ] page)", style="dim")
        self.query_one("#filters", Static).update(t)

    def _refilter(self) -> None:
        self._generation += 1
        self.window_start = 0
        self._show_filters()
        self._worker = self._fetch(self.status_filter, self.service_filter, self._generation, True,
                                   self.incidents, self.sort_mode)

    # ---- actions ---------------------------------------------------------------------
    def selected_id(self) -> str | None:
        return self.query_one("#incidents", KeyedTable).cursor_key()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self._open(str(event.row_key.value))

    def action_open_incident(self) -> None:
        key = self.selected_id()
        if key is not None:
            self._open(key)

    def _open(self, incident_id: str) -> None:
        from workbench.tui.screens.incident import IncidentScreen

        self.app.push_screen(IncidentScreen(incident_id, self.incidents.get(incident_id)))

    def action_cycle_status(self) -> None:
        i = STATUS_CYCLE.index(self.status_filter)
        self.status_filter = STATUS_CYCLE[(i + 1) % len(STATUS_CYCLE)]
        self._refilter()

    def action_pick_service(self) -> None:
        from workbench.tui.screens.modals import ServicePicker

        known = sorted({s for i in self.incidents.values() for s in i.services})

        def chosen(value: Any) -> None:
            if value is False:
                return  # cancelled
            self.service_filter = value or None
            self._refilter()

        self.app.push_screen(ServicePicker(known, self.service_filter), chosen)

    def action_toggle_sort(self) -> None:
        self.sort_mode = "time" if self.sort_mode == "severity" else "severity"
        self.order = sort_order(self.incidents, self.sort_mode)
        self.window_start = 0
        self._show_window()
        self.query_one("#incidents", KeyedTable).move_cursor(row=0, animate=False)
        self._show_filters()

    def action_page(self, step: int) -> None:
        if len(self.order) <= WINDOW:
            return
        before = self.window_start
        self.window_start += step * WINDOW
        self._show_window()
        if self.window_start != before:
            self.query_one("#incidents", KeyedTable).move_cursor(row=0, animate=False)
        self._show_filters()

    def action_refresh_now(self) -> None:
        self.poll()

    def action_open_web(self) -> None:
        key = self.selected_id()
        if key is not None:
            self.tui.open_in_web(key)

    def action_rerun(self) -> None:
        key = self.selected_id()
        if key is not None:
            self._rerun(key)

    @work(thread=True, group="rerun")
    def _rerun(self, incident_id: str) -> None:
        try:
            self.tui.request(lambda c: c.rerun_rca(incident_id))
        except ClientError:
            return
        self.app.call_from_thread(self.notify, f"RCA rerun requested for {incident_id}")
