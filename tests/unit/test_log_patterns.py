"""Log pattern counts around one moment (the evidence page's "new patterns after the change")."""

from __future__ import annotations

from server.model import LogWindow
from server.rca.drain import build_index
from server.rca.log_patterns import pattern_counts

T0 = 1_800_000_000.0


def test_new_pattern_after_the_change_counts_before_and_after() -> None:
    rows: list[tuple[str, float, str, str]] = []
    for i in range(60):  # a steady warning on checkout, before and after
        rows.append(("checkout", T0 - 1800 + i * 40, "WARN", f"slow request took {100 + i} ms"))
    for i in range(12):  # an error that starts 20 s after the change
        rows.append(("payments", T0 + 20 + i * 15, "ERROR", f"tokenizer.py: card token {i:04x} rejected"))
    rows.append(("search", T0 + 5, "ERROR", "unrelated service outside the filter"))
    logs = LogWindow(service=[r[0] for r in rows], ts=[r[1] for r in rows], level=[r[2] for r in rows],
                     message=[r[3] for r in rows])
    index = build_index(logs, since=T0 - 1800, until=T0 + 600)
    pats = pattern_counts(index, at=T0, before_s=1800, after_s=600, services={"checkout", "payments"})
    assert [p.service for p in pats] == ["payments", "checkout"]  # new first; search filtered out
    new, steady = pats
    assert (new.new, new.before, new.after, new.level) == (True, 0, 12, "ERROR")
    assert new.first_after_s == 20.0 and "tokenizer.py" in new.template and "<*>" in new.template
    assert not steady.new and steady.before > 0 and steady.after > 0 and steady.level == "WARN"
    assert steady.before + steady.after == 60 - sum(1 for r in rows[:60] if r[1] > T0 + 600)


def test_no_logs_no_patterns() -> None:
    index = build_index(LogWindow.empty(), since=T0 - 10, until=T0 + 10)
    assert pattern_counts(index, at=T0, before_s=10, after_s=10) == []
