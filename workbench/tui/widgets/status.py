"""The connection status bar shown at the bottom of every screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class ConnState:
    """``state`` is connecting / ok / slow / down; ``message`` is what the user reads."""

    state: str
    message: str


STYLES = {"connecting": ("…", "yellow"), "ok": ("●", "green"), "slow": ("◐", "bold yellow"),
          "down": ("✖", "bold red")}


def conn_text(conn: ConnState) -> Text:
    icon, style = STYLES.get(conn.state, ("?", ""))
    return Text(f" {icon} ", style=style) + Text(conn.message, style=style if conn.state != "ok" else "")


class ConnectionBar(Static):
    """Follows ``app.conn`` (a reactive :class:`ConnState` on the app)."""

    DEFAULT_CSS = """
    ConnectionBar { height: 1; background: $panel; }
    ConnectionBar.-down { background: $error 30%; }
    ConnectionBar.-slow { background: $warning 25%; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "conn", self._show, init=True)

    def _show(self, conn: Any) -> None:
        if not isinstance(conn, ConnState):
            return
        self.set_class(conn.state == "down", "-down")
        self.set_class(conn.state == "slow", "-slow")
        self.update(conn_text(conn))
