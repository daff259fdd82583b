"""Render the incident view to SVG (and PNG when cairosvg is installed) for the docs.

    python -m workbench.tui.screenshot --out docs/img/tui-incident.png           # demo data
    python -m workbench.tui.screenshot --url http://127.0.0.1:8000 --incident inc-3 --out shot.png

Without ``--url`` it starts an embedded server and replays one seeded simulator scenario
into it over HTTP (the same data path as ``rca demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from workbench.tui.app import RcaTui
from workbench.tui.screens.incident import IncidentScreen
from workbench.tui.screens.incidents import IncidentListScreen


async def _shoot(url: str, incident: str | None, size: tuple[int, int], name: str) -> str:
    app = RcaTui(url, refresh=60, server_name=name)
    async with app.run_test(size=size) as pilot:
        for _ in range(400):
            if isinstance(app.screen, IncidentListScreen) and app.screen.loaded:
                break
            await pilot.pause(0.05)
        if incident is not None:
            app.push_screen(IncidentScreen(incident))
        else:
            await pilot.press("enter")
        for _ in range(400):
            if isinstance(app.screen, IncidentScreen) and app.screen.data is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        return app.export_screenshot(title="rca tui — incident view")


def to_png(svg: str, out: Path, width: int = 1800) -> bool:
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        return False
    # Textual's SVG asks for Fira Code from a CDN; render with a local monospace font instead.
    svg = svg.replace("Fira Code", "DejaVu Sans Mono")
    cairosvg.svg2png(bytestring=svg.encode(), write_to=str(out), output_width=width)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (default: embedded server with a replayed scenario)")
    p.add_argument("--incident", help="incident id (default: the first in the list)")
    p.add_argument("--seed", type=int, default=3, help="scenario seed for the embedded demo data")
    p.add_argument("--size", default="140x42", help="terminal COLSxROWS (default 140x42)")
    p.add_argument("--out", type=Path, default=Path("docs/img/tui-incident.png"))
    args = p.parse_args(argv)
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    if args.url:
        svg = asyncio.run(_shoot(args.url, args.incident, (cols, rows), args.url))
    else:
        from server.embedded import EmbeddedServer
        from server.sim.replay import replay
        from server.sim.scenario import generate_scenario

        with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(data_dir=Path(tmp) / "data") as srv:
            replay(generate_scenario(args.seed, kind="deployment", history_hours=1.0, n_services=6), srv.url)
            svg = asyncio.run(_shoot(srv.url, args.incident, (cols, rows), "rca demo"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    svg_path = args.out.with_suffix(".svg")
    if args.out.suffix.lower() == ".png" and to_png(svg, args.out):
        print(f"wrote {args.out}")
    else:
        svg_path.write_text(svg)
        print(f"wrote {svg_path} (install cairosvg for PNG)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
