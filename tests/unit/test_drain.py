"""Drain template mining and new-pattern counting over a log window."""

from __future__ import annotations

import numpy as np

from server.model import LogWindow
from server.rca.drain import Drain, build_index, mask_messages

T0 = 1_800_000_000.0


def test_masking_collapses_variable_parts() -> None:
    codes, uniques = mask_messages([
        "upstream timeout calling payments after 2000 ms",
        "upstream timeout calling payments after 35 ms",
        "request 9f2c1e7a failed: 500 Internal Server Error",
        "request ab12cd34 failed: 500 Internal Server Error",
    ])
    assert codes[0] == codes[1] and codes[2] == codes[3]
    assert "upstream timeout calling payments after <*> ms" in uniques


def test_drain_groups_messages_that_differ_in_one_token() -> None:
    d = Drain()
    a = d.add("user alice logged in from web")
    b = d.add("user bob logged in from web")
    c = d.add("cache miss for key items")
    assert a == b != c
    assert d.template(a) == "user <*> logged in from web"


def _window(lines: list[tuple[str, float, str, str]]) -> LogWindow:
    return LogWindow(service=[x[0] for x in lines], ts=[x[1] for x in lines], level=[x[2] for x in lines],
                     message=[x[3] for x in lines])


def test_new_patterns_after_a_change_versus_before() -> None:
    lines = []
    # a background warning all along, on checkout
    for i in range(60):
        lines.append(("checkout", T0 + i * 60.0, "WARN", f"GC pause of {i * 3 + 10} ms"))
    # a new error on payments from T0 + 1800 (after the change at T0 + 1790)
    for i in range(20):
        lines.append(("payments", T0 + 1800 + i * 10.0, "ERROR", f"Unhandled exception in tokenizer.py line {i}"))
    idx = build_index(_window(lines), since=T0, until=T0 + 3600)
    assert idx.lines == 80
    assert any("tokenizer.py" in t for t in idx.templates)
    times = np.array([T0 + 1790.0, T0 + 900.0])
    ends = times + 600.0
    new, _ = idx.new_patterns(times=times, ends=ends)
    groups = {(idx.group_service[g], idx.templates[idx.group_template[g]]): g for g in range(len(idx.group_ts))}
    g_err = groups[("payments", "Unhandled exception in tokenizer.py line <*>")]
    g_gc = groups[("checkout", "GC pause of <*> ms")]
    assert new[g_err, 0] and not new[g_err, 1]  # new right after the first change time only
    assert not new[g_gc].any()  # steady background is never new
    assert idx.group_example[g_err].startswith("Unhandled exception in tokenizer.py line")


def test_empty_window() -> None:
    idx = build_index(LogWindow.empty(), since=T0, until=T0 + 60)
    assert idx.lines == 0
    assert idx.new_patterns(times=np.array([T0]), ends=np.array([T0 + 60]))[0].shape == (0, 1)


def test_huge_windows_are_mined_on_a_systematic_sample() -> None:
    lines = [("checkout", T0 + i * 0.5, "WARN", f"GC pause of {i % 97} ms") for i in range(3000)]
    lines += [("payments", T0 + 1200 + i, "ERROR", f"Unhandled exception in tokenizer.py line {i}") for i in range(60)]
    lines.sort(key=lambda x: x[1])
    idx = build_index(_window(lines), since=T0, until=T0 + 3600, max_lines=1000)
    assert idx.lines == 3060 and idx.sample_step == 4
    new, _ = idx.new_patterns(times=np.array([T0 + 1190.0]), ends=np.array([T0 + 1800.0]))
    err = [g for g in range(len(idx.group_ts)) if idx.group_service[g] == "payments"]
    assert err and new[err[0], 0]


def test_templates_do_not_depend_on_row_order() -> None:
    msgs = ["user alice logged in", "user bob logged in", "disk 3 full", "cache miss for key a1"]
    fwd = build_index(_window([("s", T0 + i, "WARN", m) for i, m in enumerate(msgs)]), since=T0, until=T0 + 9)
    rev = build_index(_window([("s", T0 + i, "WARN", m) for i, m in enumerate(reversed(msgs))]), since=T0,
                      until=T0 + 9)
    assert sorted(fwd.templates) == sorted(rev.templates)
