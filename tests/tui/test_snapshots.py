"""SVG snapshots of the main screens (pytest-textual-snapshot) against a real embedded
server seeded with fixed incidents. Update with ``pytest tests/tui --snapshot-update``."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from server.embedded import EmbeddedServer
from tests.tui.tui_seed import wait_for
from workbench.tui.app import RcaTui
from workbench.tui.screens.incident import IncidentScreen
from workbench.tui.screens.incidents import IncidentListScreen
from workbench.tui.screens.modals import HelpScreen

SIZE = (140, 40)


def make_app(srv: EmbeddedServer) -> RcaTui:
    # a long refresh keeps polling out of the picture; the name hides the random port
    return RcaTui(srv.url, refresh=60, server_name="rca-test-server", web_url="http://web")


async def list_loaded(pilot: Pilot[Any]) -> None:
    await wait_for(lambda: isinstance(pilot.app.screen, IncidentListScreen) and pilot.app.screen.loaded)
    await wait_for(lambda: "connected" in str(pilot.app.screen.query_one("#conn").render()))


async def incident_loaded(pilot: Pilot[Any]) -> None:
    await list_loaded(pilot)
    await pilot.press("enter")
    await wait_for(lambda: isinstance(pilot.app.screen, IncidentScreen) and pilot.app.screen.data is not None)
    await pilot.pause()


def test_incident_list(snap_compare: Any, small_server: EmbeddedServer) -> None:
    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=list_loaded)


def test_incident_view(snap_compare: Any, small_server: EmbeddedServer) -> None:
    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=incident_loaded)


def test_incident_view_second_suspect(snap_compare: Any, small_server: EmbeddedServer) -> None:
    async def second(pilot: Pilot[Any]) -> None:
        await incident_loaded(pilot)
        await pilot.press("down", "down")  # the flag change: rollout bar in the change details
        await pilot.pause()

    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=second)


def test_help_screen(snap_compare: Any, small_server: EmbeddedServer) -> None:
    async def help_open(pilot: Pilot[Any]) -> None:
        await list_loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()

    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=help_open)
