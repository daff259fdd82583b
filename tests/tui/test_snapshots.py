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
from workbench.tui.widgets.keyed_table import KeyedTable

SIZE = (140, 40)


def make_app(srv: EmbeddedServer) -> RcaTui:
    # a long refresh keeps polling out of the picture; the name hides the random port; a
    # loaded CI machine may take seconds per request, which must not turn the bar to "slow"
    return RcaTui(srv.url, refresh=60, server_name="rca-test-server", web_url="http://web",
                  slow_after=120.0, timeout=60.0)


def shown(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector).render())


async def list_loaded(pilot: Pilot[Any]) -> None:
    await wait_for(lambda: isinstance(pilot.app.screen, IncidentListScreen) and pilot.app.screen.loaded)
    await wait_for(lambda: pilot.app.screen.query_one("#incidents", KeyedTable).row_count == 6)
    await wait_for(lambda: "connected" in shown(pilot, "#conn"))


async def incident_loaded(pilot: Pilot[Any]) -> None:
    await list_loaded(pilot)
    await pilot.press("enter")
    await wait_for(lambda: isinstance(pilot.app.screen, IncidentScreen) and pilot.app.screen.data is not None)
    await wait_for(lambda: shown(pilot, "#explanation").startswith("#1 dep-481")
                   and "checkout / error_rate" in shown(pilot, "#anoms"))
    await pilot.pause()


def test_incident_list(snap_compare: Any, small_server: EmbeddedServer) -> None:
    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=list_loaded)


def test_incident_view(snap_compare: Any, small_server: EmbeddedServer) -> None:
    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=incident_loaded)


def test_incident_view_second_suspect(snap_compare: Any, small_server: EmbeddedServer) -> None:
    async def second(pilot: Pilot[Any]) -> None:
        await incident_loaded(pilot)
        await pilot.press("down", "down")  # the flag change: rollout bar in the change details
        await wait_for(lambda: shown(pilot, "#explanation").startswith("#3 flag-9")
                       and "rollout" in shown(pilot, "#change"))
        await pilot.pause()

    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=second)


def test_help_screen(snap_compare: Any, small_server: EmbeddedServer) -> None:
    async def help_open(pilot: Pilot[Any]) -> None:
        await list_loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(small_server), terminal_size=SIZE, run_before=help_open)
