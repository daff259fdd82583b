"""The Textual triage console: ``RcaTui`` (``rca tui``).

The app talks to the server only through :mod:`workbench.client`. Every request runs
in a Textual thread worker, so the screen never waits on the network; the results are
applied on the UI thread. Connection trouble is shown in the status bar while the last
data stays on screen, and polling keeps going so the app reconnects by itself.
"""

from __future__ import annotations

import getpass
import time
import webbrowser
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive

from workbench.client import ClientError, RcaClient, ServerError, ServerTimeout, ServerUnavailable
from workbench.tui.widgets.status import ConnState

T = TypeVar("T")

DEFAULT_WEB_URL = "http://127.0.0.1:3000"


def _default_author() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "tui"


class RcaTui(App[None]):
    """Incident list → incident view, with labelling and RCA reruns."""

    CSS_PATH = "app.tcss"
    TITLE = "rca · incident triage"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    conn: reactive[ConnState] = reactive(ConnState("connecting", "connecting…"), always_update=True)

    def __init__(self, url: str, *, web_url: str = DEFAULT_WEB_URL, refresh: float = 2.0,
                 timeout: float = 5.0, slow_after: float = 1.5, author: str | None = None,
                 max_incidents: int = 5000, opener: Callable[[str], Any] | None = None,
                 server_name: str | None = None) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.server_name = server_name or self.url  # what the status bar calls the server
        self.web_url = web_url.rstrip("/")
        self.refresh_seconds = max(0.05, refresh)
        self.slow_after = slow_after
        self.author = author or _default_author()
        self.max_incidents = max_incidents
        self.client = RcaClient(self.url, timeout=timeout)
        self._opener = opener or webbrowser.open
        self._was_down = False
        self.sub_title = self.server_name
        self.conn = ConnState("connecting", f"connecting to {self.server_name}…")

    def on_mount(self) -> None:
        from workbench.tui.screens.incidents import IncidentListScreen

        self.push_screen(IncidentListScreen())

    def on_unmount(self) -> None:
        self.client.close()

    # ---- requests (call from thread workers) ------------------------------------------
    def request(self, fn: Callable[[RcaClient], T]) -> T:
        """Run one client call from a thread worker, reporting the connection state.

        Raises the client's error after reporting it, so callers can keep their last data.
        """
        t0 = time.monotonic()
        try:
            out = fn(self.client)
        except ClientError as exc:
            self.call_from_thread(self.report_error, exc)
            raise
        self.call_from_thread(self.report_ok, time.monotonic() - t0)
        return out

    def report_ok(self, latency: float) -> None:
        if self._was_down:
            self._was_down = False
            self.notify(f"Reconnected to {self.server_name}", title="Server back")
        if latency > self.slow_after:
            self.conn = ConnState("slow", f"server at {self.server_name} is slow ({latency:.1f}s per request)")
        else:
            self.conn = ConnState("ok", f"connected to {self.server_name}")

    def report_error(self, exc: ClientError) -> None:
        every = f"retrying every {self.refresh_seconds:g}s"
        if isinstance(exc, ServerTimeout):
            self._was_down = True
            self.conn = ConnState("slow", f"server at {self.server_name} is not answering (timeout) · showing last "
                                          f"data · {every}")
        elif isinstance(exc, ServerUnavailable):
            self._was_down = True
            self.conn = ConnState("down", f"server unreachable at {self.server_name} · showing last data · {every}")
        elif isinstance(exc, ServerError):
            # a failing server fails every poll: say it once in the status bar, not in a toast per poll
            self._was_down = True
            self.conn = ConnState("down", f"server error (HTTP {exc.status_code}): {str(exc.detail)[:80]} · "
                                          f"showing last data · {every}")
        else:
            self.notify(str(exc), title="Request failed", severity="error", timeout=6)

    # ---- actions ---------------------------------------------------------------------
    def action_help(self) -> None:
        from workbench.tui.screens.modals import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def incident_web_url(self, incident_id: str) -> str:
        return f"{self.web_url}/incidents/{incident_id}"

    def open_in_web(self, incident_id: str) -> None:
        url = self.incident_web_url(incident_id)
        try:
            self._opener(url)
        except Exception as exc:  # no browser available
            self.notify(f"Could not open a browser: {exc}. URL: {url}", severity="warning")
            return
        self.notify(f"Opened {url}")
