"""The TUI driven by Textual's Pilot against a real embedded server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from server.embedded import EmbeddedServer, free_port
from tests.support import silent_server
from tests.tui.tui_seed import ONSET, incident, seed_small, store_of, wait_for
from workbench.client import RcaClient
from workbench.tui.app import RcaTui
from workbench.tui.screens.incident import IncidentScreen, suspect_key
from workbench.tui.screens.incidents import IncidentListScreen
from workbench.tui.screens.modals import HELP_KEYS, HelpScreen, LabelChangePicker
from workbench.tui.widgets.keyed_table import KeyedTable
from workbench.tui.widgets.status import ConnectionBar

SIZE = (150, 45)


def list_screen(app: RcaTui) -> IncidentListScreen:
    screen = app.screen
    assert isinstance(screen, IncidentListScreen), screen
    return screen


def table_keys(app: RcaTui, table_id: str) -> list[str]:
    return app.screen.query_one(f"#{table_id}", KeyedTable).keys


def cell(app: RcaTui, table_id: str, row: str, column: str) -> str:
    return str(app.screen.query_one(f"#{table_id}", KeyedTable).get_cell(row, column))


def status_bar(app: RcaTui) -> str:
    return str(app.screen.query_one(ConnectionBar).render())


async def test_list_shows_incidents_of_a_replayed_scenario(scenario_server: EmbeddedServer) -> None:
    with RcaClient(scenario_server.url) as c:
        expected = {i.id for i in c.incidents(limit=1000)}
    assert expected, "the scenario should open at least one incident"
    app = RcaTui(scenario_server.url, refresh=0.3, slow_after=60.0)  # a loaded machine is not "slow" here
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: list_screen(app).loaded)
        assert set(table_keys(app, "incidents")) == expected
        assert "connected" in status_bar(app)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, IncidentScreen) and app.screen.data is not None)
        screen = app.screen
        assert isinstance(screen, IncidentScreen) and screen.data is not None
        # suspects appear ranked as the server ranked them, the anomalies with sparklines
        with RcaClient(scenario_server.url) as c:
            listed = c.suspects(screen.incident_id)
        ranked = [suspect_key(s) for s in listed]
        assert table_keys(app, "suspects") == ranked
        # root-service suspects are listed beside change suspects, marked as such
        roots = [s for s in listed if s.kind == "service"]
        assert roots and f"root:{roots[0].service}" in ranked
        assert cell(app, "suspects", f"root:{roots[0].service}", "kind") == "ROOT"
        anoms = str(screen.query_one("#anoms").render())
        assert screen.data.anomalies[0].metric in anoms and "^" in anoms
        # each anomaly says why it is anomalous (wrapped to the pane: compare without spaces)
        flat = "".join(anoms.split())
        assert all("".join(f"why: {a.reason}".split()) in flat for a in screen.data.anomalies if a.reason)
        assert any(a.reason for a in screen.data.anomalies)


async def test_live_updates_arrive_without_a_key_press(small_server: EmbeddedServer) -> None:
    store = store_of(small_server)
    app = RcaTui(small_server.url, refresh=0.2)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: list_screen(app).loaded)
        assert len(table_keys(app, "incidents")) == 6
        # a new incident opens on the server: it shows up by itself
        store.save_incidents(incidents=[incident(7, severity=0.99)])
        await wait_for(lambda: "inc-7" in table_keys(app, "incidents"))
        assert table_keys(app, "incidents")[0] == "inc-7"  # most severe open incident first
        # an open incident resolves: its status changes and it moves below the open ones
        resolved = incident(7, status="RESOLVED", severity=0.99)
        resolved.resolved_at = ONSET + 600
        store.save_incidents(incidents=[resolved])
        await wait_for(lambda: cell(app, "incidents", "inc-7", "status") == "RESOLVED")
        keys = table_keys(app, "incidents")
        first_resolved = min(keys.index(k) for k in ("inc-3", "inc-5", "inc-7"))
        assert keys.index("inc-7") >= first_resolved and keys[:4] == [k for k in keys if k in
                                                                     ("inc-1", "inc-2", "inc-4", "inc-6")]


async def test_filters_and_sort(small_server: EmbeddedServer) -> None:
    app = RcaTui(small_server.url, refresh=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: list_screen(app).loaded)
        await pilot.press("s")  # status: OPEN
        await wait_for(lambda: sorted(table_keys(app, "incidents")) == ["inc-1", "inc-2", "inc-4", "inc-6"])
        await pilot.press("s")  # status: RESOLVED
        await wait_for(lambda: sorted(table_keys(app, "incidents")) == ["inc-3", "inc-5"])
        await pilot.press("s")  # all again
        await wait_for(lambda: len(table_keys(app, "incidents")) == 6)
        # time sort: newest onset first among the open incidents (inc-1 is the newest)
        await pilot.press("t")
        assert table_keys(app, "incidents")[:4] == ["inc-1", "inc-2", "inc-4", "inc-6"]
        # service filter: pick "search" (incidents 3 and 4 involve it)
        await pilot.press("f")
        await wait_for(lambda: app.screen.__class__.__name__ == "ServicePicker")
        ol = app.screen.query_one("#service-list")
        await wait_for(lambda: any(o.id == "search" for o in ol.options))  # type: ignore[attr-defined]
        ol.highlighted = next(i for i, o in enumerate(ol.options) if o.id == "search")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(lambda: sorted(table_keys(app, "incidents")) == ["inc-3", "inc-4"])
        assert "service: search" in str(app.screen.query_one("#filters").render())


async def open_incident(app: RcaTui, pilot: Any, incident_id: str) -> IncidentScreen:
    """From the list, move the cursor to ``incident_id`` with the arrow keys and press enter."""
    table = app.screen.query_one("#incidents", KeyedTable)
    await pilot.press("ctrl+home")
    for _ in range(table.row_count):
        if table.cursor_key() == incident_id:
            break
        await pilot.press("down")
    await pilot.press("enter")
    await wait_for(lambda: isinstance(app.screen, IncidentScreen) and app.screen.data is not None)
    screen = app.screen
    assert isinstance(screen, IncidentScreen) and screen.incident_id == incident_id
    return screen


async def test_labels_are_sent_and_a_rerun_changes_the_ranking(scenario_server: EmbeddedServer) -> None:
    c = RcaClient(scenario_server.url)
    with_suspects = [i.id for i in c.incidents() if len(c.suspects(i.id)) >= 2]
    assert len(with_suspects) >= 2, "both scenarios should give an incident with several suspects"
    labelled, other = with_suspects[0], with_suspects[1]
    # before any label (the server re-ranks open incidents itself once it has retrained)
    scores_before = [(s.change_id, s.score) for s in c.suspects(other)]
    app = RcaTui(scenario_server.url, refresh=0.3, author="pilot")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: list_screen(app).loaded)
        screen = await open_incident(app, pilot, labelled)
        ranked = table_keys(app, "suspects")
        # the top suspect is the cause, the second is not
        await pilot.press("c", "down", "n")
        # a change's label names the change, a root-service suspect's label its service
        await wait_for(lambda: {(lb.change_id or f"root:{lb.extra.get('service')}", lb.verdict)
                                for lb in c.labels(labelled)} == {(ranked[0], "cause"), (ranked[1], "not_cause")})
        assert {lb.author for lb in c.labels(labelled)} == {"pilot"}
        await wait_for(lambda: "cause" in cell(app, "suspects", ranked[0], "label")
                       and "not" in cell(app, "suspects", ranked[1], "label"))
        await pilot.press("escape")
        # the server retrains in the background (slow on a loaded machine)
        await wait_for(lambda: int((c.model() or {}).get("version") or 0) >= 1, timeout=60)
        # another incident: rerunning it uses what the labels taught the ranking model
        screen = await open_incident(app, pilot, other)
        await pilot.press("r")
        await wait_for(lambda: screen.last_rerun is not None, timeout=20)
        after = c.suspects(other)
        assert [(s.change_id, s.score) for s in after] != scores_before
        # (the server may already have re-ranked the open incident after retraining)
        assert screen.last_rerun in ("ranking changed", "scores updated, same order", "ranking unchanged")
        # the screen shows the new ranking
        assert table_keys(app, "suspects") == [suspect_key(s) for s in after]
        top = after[0]
        assert cell(app, "suspects", suspect_key(top), "score").startswith(f"{top.score:4.2f}")
    c.close()


async def test_label_a_change_that_is_not_a_suspect(small_server: EmbeddedServer) -> None:
    app = RcaTui(small_server.url, refresh=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: list_screen(app).loaded)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, IncidentScreen) and app.screen.data is not None)
        await pilot.press("l")
        await wait_for(lambda: isinstance(app.screen, LabelChangePicker))
        # the picker lists the changes around the onset
        await wait_for(lambda: app.screen.query_one("#change-list").option_count >= 4)  # type: ignore[attr-defined]
        await pilot.press(*"dep-12", "enter")
        await wait_for(lambda: isinstance(app.screen, IncidentScreen))
        with RcaClient(small_server.url) as c:
            await wait_for(lambda: [(lb.change_id, lb.verdict) for lb in c.labels("inc-1")] == [("dep-12", "cause")])


async def test_open_in_web_app(small_server: EmbeddedServer) -> None:
    opened: list[str] = []
    app = RcaTui(small_server.url, web_url="http://web.example:3000/", opener=opened.append)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: list_screen(app).loaded)
        await pilot.press("o")
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, IncidentScreen))
        await pilot.press("o")
        assert opened == ["http://web.example:3000/incidents/inc-1"] * 2


async def test_server_down_is_shown_and_the_app_reconnects(tmp_path: Path) -> None:
    srv = EmbeddedServer(data_dir=tmp_path / "data").start()
    seed_small(store_of(srv))
    port = srv.port
    app = RcaTui(srv.url, refresh=0.2, timeout=2.0, slow_after=60.0)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: list_screen(app).loaded)
            srv.stop()
            await wait_for(lambda: "unreachable" in status_bar(app))
            assert "showing last data" in status_bar(app)
            assert len(table_keys(app, "incidents")) == 6  # last data kept
            await pilot.press("down", "t")  # still responsive
            assert list_screen(app).sort_mode == "time"
            srv = EmbeddedServer(data_dir=tmp_path / "data", port=port).start()
            await wait_for(lambda: "connected" in status_bar(app), timeout=15)
            assert len(table_keys(app, "incidents")) == 6
    finally:
        srv.stop()


async def test_starting_before_the_server_connects_once_it_is_up(tmp_path: Path) -> None:
    port = free_port()
    app = RcaTui(f"http://127.0.0.1:{port}", refresh=0.2, timeout=2.0, slow_after=60.0)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: "unreachable" in status_bar(app))
        assert "loading" in str(app.screen.query_one("#empty").render())
        with EmbeddedServer(data_dir=tmp_path / "data", port=port) as srv:
            seed_small(store_of(srv))
            await wait_for(lambda: len(table_keys(app, "incidents")) == 6, timeout=15)
            assert "connected" in status_bar(app)


async def test_a_hung_server_is_reported_as_not_answering() -> None:
    with silent_server() as url:
        app = RcaTui(url, refresh=0.2, timeout=0.3)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: "not answering" in status_bar(app))
            assert "retrying" in status_bar(app)
            await pilot.press("question_mark")  # the UI is not blocked by the hung requests
            assert isinstance(app.screen, HelpScreen)


async def test_help_screen_lists_every_key(small_server: EmbeddedServer) -> None:
    listed = {k for _, keys in HELP_KEYS for key, _ in keys for k in key.split(" / ")}
    for screen_cls in (IncidentListScreen, IncidentScreen, RcaTui):
        for b in screen_cls.BINDINGS:
            key = b.key_display or b.key  # type: ignore[union-attr]
            assert key in listed, f"{key} of {screen_cls.__name__} missing from the help screen"
    app = RcaTui(small_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, IncidentListScreen))


def test_cli_help_and_arguments() -> None:
    import argparse

    from workbench.tui import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args(["--url", "http://x:1", "--refresh", "0.5", "--web-url", "http://w"])
    assert (args.url, args.refresh, args.web_url) == ("http://x:1", 0.5, "http://w")
    assert cli.__doc__ and "triage" in cli.__doc__
    started = time.monotonic()
    assert time.monotonic() - started < 1
