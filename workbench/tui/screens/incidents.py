"""The live incident list: filter by status and service, sort by severity or time."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static

from workbench.client import ClientError, Incident, RcaClient
from workbench.tui.render import INCIDENT_COLUMNS, incident_row, incident_sort_key
from workbench.tui.widgets.keyed_table import KeyedTable
from workbench.tui.widgets.status import ConnectionBar

if TYPE_CHECKING:
    from workbench.tui.app import RcaTui

def _page(c: RcaClient, *, status: str | None, service: str | None, limit: int, offset: int) -> list[Incident]:
    return c.incidents(status=status, service=service, limit=limit, offset=offset)


STATUS_CYCLE: tuple[str | None, ...] = (None, "OPEN", "RESOLVED")
PAGE = 500


class IncidentListScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "open_incident", "Open", show=True),
        Binding("s", "cycle_status", "Status filter"),
        Binding("f", "pick_service", "Service filter"),
        Binding("t", "toggle_sort", "Sort"),
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
        self._generation = 0
        self._timer: Timer | None = None

    @property
    def tui(self) -> RcaTui:
        return cast("RcaTui", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="filters")
        table = KeyedTable(id="incidents", key_column="id", cursor_type="row", zebra_stripes=True)
        for key, label in INCIDENT_COLUMNS:
            table.add_column(label, key=key)
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
        if self.loaded and not self.is_current:
            return  # the incident view polls for itself; catch up on resume
        self._fetch(self.status_filter, self.service_filter, self._generation)

    @work(thread=True, exclusive=True, group="incident-list")
    def _fetch(self, status: str | None, service: str | None, generation: int) -> None:
        limit = self.tui.max_incidents
        found: list[Incident] = []
        try:
            while len(found) < limit:
                want, offset = min(PAGE, limit - len(found)), len(found)
                page = self.tui.request(partial(_page, status=status, service=service, limit=want,
                                                offset=offset))
                found.extend(page)
                if len(page) < want:
                    break
        except ClientError:
            return
        self.app.call_from_thread(self._apply, found, generation)

    def _apply(self, found: list[Incident], generation: int) -> None:
        if not self.is_attached:
            return  # closed while the request was in flight
        if generation != self._generation:
            return  # filters changed while this page was in flight
        fresh = {i.id: i for i in found}
        new_ids = [k for k in fresh if k not in self.incidents] if self.loaded else []
        self.incidents = fresh
        self.loaded = True
        self._sync_table()
        if new_ids:
            self.notify(f"{len(new_ids)} new incident(s): {', '.join(new_ids[:3])}"
                        f"{' …' if len(new_ids) > 3 else ''}", title="New incidents")

    def _sync_table(self) -> None:
        table = self.query_one("#incidents", KeyedTable)
        ordered = sorted(self.incidents.values(), key=lambda i: incident_sort_key(i, self.sort_mode))
        table.sync([(i.id, incident_row(i)) for i in ordered])
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
        self.query_one("#filters", Static).update(t)

    def _refilter(self) -> None:
        self._generation += 1
        self._show_filters()
        self._fetch(self.status_filter, self.service_filter, self._generation)

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
        self._sync_table()

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
