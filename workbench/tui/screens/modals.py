"""Modal screens: help, service filter picker, "label another change" picker."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from workbench.client import Change, ClientError
from workbench.tui.guard import while_shown
from workbench.tui.render import KIND_NAME, change_summary, fmt_time

if TYPE_CHECKING:
    from workbench.tui.app import RcaTui

HELP_KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Everywhere", (("?", "this help"), ("q", "quit"), ("ctrl+p", "command palette"))),
    ("Incident list", (
        ("↑ ↓ / pgup pgdn", "move"), ("ctrl+home / ctrl+end", "first / last row"),
        ("[ / ]", "previous / next 300 incidents (long lists)"),
        ("enter", "open the incident"),
        ("s", "filter by status: all → OPEN → RESOLVED"), ("f", "filter by service"),
        ("t", "sort by severity ↔ by time"), ("r", "rerun RCA of the highlighted incident"),
        ("o", "open the incident in the web app"), ("g", "refresh now"),
    )),
    ("Incident view", (
        ("↑ ↓", "select a suspect (evidence and change details follow)"),
        ("c", "label the selected suspect as the cause"),
        ("n", "label the selected suspect as not the cause"),
        ("l", "label another change (not in the list) as the cause"),
        ("r", "rerun RCA (uses every label so far)"), ("o", "open in the web app"),
        ("escape", "back to the list"),
    )),
)


def help_text() -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", justify="right")
    t.add_column()
    for section, keys in HELP_KEYS:
        t.add_row("", Text(section, style="bold underline"))
        for key, what in keys:
            t.add_row(key, what)
        t.add_row("", "")
    t.add_row("", Text("The list and the open incident refresh by themselves; the bottom bar shows "
                       "the connection. When the server is down the last data stays on screen and "
                       "the app reconnects on its own.", style="dim"))
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("Keys", classes="modal-title")
            yield Static(help_text(), id="help-keys")
            yield Static("escape closes", classes="modal-hint")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class ServicePicker(ModalScreen[Any]):
    """Dismisses with a service name, ``""`` for all services, or ``False`` when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, known: list[str], current: str | None) -> None:
        super().__init__()
        self.known = known
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="service-box", classes="modal-box"):
            yield Static("Filter by service", classes="modal-title")
            yield OptionList(*self._options(self.known), id="service-list")
            yield Static("enter selects · escape cancels", classes="modal-hint")

    def _options(self, names: list[str]) -> list[Option]:
        opts = [Option(Text("all services", style="italic"), id="")]
        for n in names:
            mark = " ✓" if n == self.current else ""
            opts.append(Option(n + mark, id=n))
        return opts

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        tui = cast("RcaTui", self.app)
        try:
            names = [s.name for s in tui.request(lambda c: c.services())]
        except ClientError:
            return
        merged = sorted(set(names) | set(self.known))
        self.app.call_from_thread(self._show, merged)

    @while_shown
    def _show(self, names: list[str]) -> None:
        ol = self.query_one("#service-list", OptionList)
        highlighted = ol.highlighted
        ol.clear_options()
        ol.add_options(self._options(names))
        ol.highlighted = highlighted if highlighted is not None else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id or "")

    def action_cancel(self) -> None:
        self.dismiss(False)


class LabelChangePicker(ModalScreen[str | None]):
    """Type a change id, or pick one of the changes around the incident's onset."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, onset: datetime | None) -> None:
        super().__init__()
        self.onset = onset

    def compose(self) -> ComposeResult:
        with Vertical(id="label-box", classes="modal-box"):
            yield Static("Label a change as the cause", classes="modal-title")
            yield Input(placeholder="change id (e.g. dep-481), enter to send", id="change-id")
            yield Static("recent changes (enter on one to pick it):", classes="modal-hint")
            yield OptionList(id="change-list")
            yield Static("tab switches between the field and the list · escape cancels",
                         classes="modal-hint")

    def on_mount(self) -> None:
        self.query_one("#change-id", Input).focus()
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        tui = cast("RcaTui", self.app)
        since = until = None
        if self.onset is not None:
            since, until = self.onset - timedelta(hours=6), self.onset + timedelta(hours=1)
        try:
            changes = tui.request(lambda c: c.changes(since=since, until=until, limit=200))
        except ClientError:
            return
        self.app.call_from_thread(self._show, changes)

    def _show(self, changes: list[Change]) -> None:
        ol = self.query_one("#change-list", OptionList)
        ol.clear_options()
        for c in changes:
            line = Text()
            line.append(f"{c.id:<14}", style="bold")
            line.append(f" {KIND_NAME.get(c.kind, c.kind):<7}", style="cyan")
            line.append(f" {fmt_time(c.ts)}  {change_summary(c)}")
            ol.add_option(Option(line, id=c.id))
        if not changes:
            ol.add_option(Option(Text("no changes around the onset", style="dim"), disabled=True))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.dismiss(event.value.strip())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
