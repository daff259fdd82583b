"""The pure figure and table builders of the Streamlit pages (workbench.ui.charts/frames)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from workbench.client import Anomaly, Change, Series, SeriesPoint, Suspect
from workbench.ui import charts, frames

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def _series(values: list[float]) -> Series:
    return Series(service="payments", metric="p95_latency_ms",
                  points=[SeriesPoint(ts=T0 + timedelta(seconds=10 * i), value=v) for i, v in enumerate(values)])


def test_robust_band_is_centred_on_the_baseline_and_ignores_post_onset_points() -> None:
    rng = np.random.default_rng(1)
    pre = list(58 + rng.normal(0, 2, 100))
    post = [180.0] * 30
    s = _series(pre + post)
    onset = (T0 + timedelta(seconds=1000)).timestamp()
    band = charts.robust_band(s.timestamps, s.values, onset=onset, baseline=58.0)
    assert band is not None and band.points == 100 and band.centre == 58.0
    assert 52 < band.lo < 56 and 60 < band.hi < 64  # ±3 robust σ of N(58, 2)
    # one outlier before onset barely moves a robust band
    spiky = charts.robust_band(s.timestamps, [*pre[:-1], 5000.0, *post], onset=onset, baseline=None)
    assert spiky is not None and spiky.hi < 66
    assert charts.robust_band(s.timestamps[:3], s.values[:3], onset=onset, baseline=1.0) is None


def test_anomaly_figure_has_band_onset_and_change_hover() -> None:
    a = Anomaly(id="an-1", incident_id="inc-1", service="payments", metric="p95_latency_ms",
                started_at=T0 + timedelta(seconds=1000), ended_at=None, direction="up", score=7.4, baseline=58.0,
                observed=181.0, extra={"labels": {"pod": "a"}})
    dep = Change(kind="deployment", id="dep-481", services=["payments"], ts=T0 + timedelta(seconds=900),
                 author="alice", fields={"version": "v2.14.0", "previous_version": "v2.13.2"})
    flag = Change(kind="flag_change", id="flag-9", services=["payments"], ts=T0 + timedelta(seconds=950),
                  fields={"flag": "new_engine", "old_state": "off", "new_state": "on", "rollout_percent": 25})
    fig = charts.anomaly_figure(a, _series([58.0] * 100 + [181.0] * 30), onset=a.started_at, changes=[dep, flag])
    names = [t.name for t in fig.data]
    assert any(n.startswith("baseline band") for n in names) and "onset" in names
    assert {"deploy", "flag"} <= set(names)
    hover = " ".join(" ".join(t.hovertext) for t in fig.data if t.name in ("deploy", "flag"))
    assert "dep-481" in hover and "deployed v2.14.0 (from v2.13.2)" in hover and "25% rollout" in hover
    assert "pod=a" in fig.layout.title.text
    assert len(fig.layout.shapes) == 3  # the onset line and one line per change


def test_suspects_chart_and_table_show_service_suspects_by_kind() -> None:
    sus = [Suspect(id="s1", incident_id="i", rank=1, kind="deployment", change_id="dep-1", service="a", ts=T0,
                   score=0.8, evidence={"time_proximity": 1.0}, explanation="a deployed"),
           Suspect(id="s2", incident_id="i", rank=2, kind="service", change_id=None, service="db", ts=None,
                   score=0.4, evidence={"anomaly_first": 0.9}, explanation="db first")]
    fig = charts.suspects_figure(sus)
    assert {t.name for t in fig.data} == {"deploy", "service"}
    df = frames.suspects_frame(sus)
    assert df["kind"].to_list() == ["deployment", "service"]
    assert df["suspect"].to_list() == ["dep-1", "service:db"]
    ev = charts.evidence_figure({"time_proximity": 1.0, "code_diff": 0.2})
    assert list(ev.data[0].y) == ["code diff", "time proximity"]  # strongest on top
