"""5,000 incidents and an incident with 200 suspects: the app keeps handling keys while
it polls (no frozen screen), and polls update rows in place instead of rebuilding."""

from __future__ import annotations

from pathlib import Path

from server.embedded import EmbeddedServer
from tests.tui.tui_seed import seed_many, store_of, wait_for
from workbench.tui.app import RcaTui
from workbench.tui.screens.incident import IncidentScreen
from workbench.tui.screens.incidents import IncidentListScreen
from workbench.tui.widgets.keyed_table import KeyedTable


async def test_big_list_and_many_suspects_stay_responsive(tmp_path: Path) -> None:
    with EmbeddedServer(data_dir=tmp_path / "data") as srv:
        seed_many(store_of(srv), n_incidents=5000, n_suspects=200)
        app = RcaTui(srv.url, refresh=0.5, timeout=20)
        async with app.run_test(size=(150, 45)) as pilot:
            screen = app.screen
            assert isinstance(screen, IncidentListScreen)
            await wait_for(lambda: screen.loaded, timeout=60)
            table = screen.query_one("#incidents", KeyedTable)
            await pilot.press("down")
            await wait_for(lambda: table.row_count == 300 and table.pending == 0, timeout=30)
            assert len(screen.order) == 5000 and "rows 1–300 of 5000" in str(screen.query_one("#filters").render())
            # keys are handled while the 5,000-row polls keep arriving
            polls = screen.polls
            await pilot.press("ctrl+end")
            assert table.cursor_row == 299
            await pilot.press("right_square_bracket")  # next 300
            assert table.cursor_key() == screen.order[300]
            screen.action_page(100)  # paging stops at the last page
            await pilot.press("left_square_bracket")
            assert table.cursor_key() == screen.order[4500] and "rows 4501–4800" in str(
                screen.query_one("#filters").render())
            await pilot.press("t")
            assert screen.sort_mode == "time"
            await pilot.press("ctrl+home", *["pagedown"] * 3, "up")
            assert table.cursor_row > 0
            await wait_for(lambda: screen.polls >= polls + 2, timeout=30)
            assert screen.last_changes == 0  # unchanged data: nothing rebuilt
            await pilot.press("ctrl+home")
            assert table.cursor_key() == "inc-1"  # newest first in time order
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, IncidentScreen) and app.screen.data is not None,
                           timeout=30)
            view = app.screen
            assert isinstance(view, IncidentScreen)
            suspects = view.query_one("#suspects", KeyedTable)
            assert suspects.row_count == 200
            await pilot.press("pagedown", "pagedown", "ctrl+end", "up")
            assert suspects.cursor_row == 198
            assert str(view.query_one("#explanation").render()).startswith("#199 ")
            await pilot.press("escape")
            assert app.screen is screen
