"""TUI responsiveness with 5,000 incidents and a 200-suspect incident: how late a 20 ms
UI timer fires while the list loads and polls (server in a separate process)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.embedded import free_port  # noqa: E402
from tests.tui.tui_seed import wait_for  # noqa: E402
from workbench.tui.app import RcaTui  # noqa: E402
from workbench.tui.screens.incident import IncidentScreen  # noqa: E402
from workbench.tui.widgets.keyed_table import KeyedTable  # noqa: E402

SERVE = """
import sys, tempfile, time
from server.embedded import EmbeddedServer
from tests.tui.tui_seed import seed_many, store_of
with EmbeddedServer(data_dir=tempfile.mkdtemp(), port=int(sys.argv[1])) as srv:
    seed_many(store_of(srv)); print("ready", flush=True); time.sleep(600)
"""


async def measure(url: str, refresh: float) -> None:
    app = RcaTui(url, refresh=refresh, timeout=20)
    lags: list[float] = []
    async with app.run_test(size=(150, 45)) as pilot:
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            lags.append(now - last[0] - 0.02)
            last[0] = now

        app.set_interval(0.02, tick)
        screen = app.screen
        table = screen.query_one("#incidents", KeyedTable)
        t0 = time.perf_counter()
        await wait_for(lambda: table.row_count > 0, timeout=60, step=0.01)
        first = time.perf_counter() - t0
        await wait_for(lambda: len(screen.order) == 5000 and table.pending == 0, timeout=60, step=0.01)  # type: ignore[attr-defined]
        listed = time.perf_counter() - t0
        load = sorted(lags)
        lags.clear()
        await asyncio.sleep(10)
        polling, polls = sorted(lags), screen.polls  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, IncidentScreen) and app.screen.data is not None, timeout=30)
        view = time.perf_counter() - t1
    p95 = lambda xs: xs[int(0.95 * len(xs))] * 1000  # noqa: E731
    print(f"first rows visible after {first:.2f}s; all 5000 incidents listed after {listed:.2f}s")
    print(f"UI stall during load: max {max(load) * 1000:.0f} ms, p95 {p95(load):.0f} ms")
    print(f"UI stall during 10 s of polling (refresh {refresh:g}s, {polls} polls): max {max(polling) * 1000:.0f} ms, "
          f"p95 {p95(polling):.0f} ms, median {statistics.median(polling) * 1000:.0f} ms")
    print(f"incident view with 200 suspects loaded in {view:.2f}s")


def main() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        asyncio.run(measure(f"http://127.0.0.1:{port}", float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
