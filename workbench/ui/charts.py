"""Plotly figures for the Streamlit pages (pure: typed client models in, figures out).

No Streamlit and no I/O here, so every figure can be built and checked in a unit test or
a notebook. Times are shown in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.client import Anomaly, Change, Incident, LogPattern, ModelVersion, Series, Suspect

KIND_COLOURS: dict[str, str] = {
    "deployment": "#1f77b4",
    "config_change": "#ff7f0e",
    "flag_change": "#2ca02c",
    "service": "#9467bd",
}
KIND_SYMBOLS: dict[str, str] = {"deployment": "triangle-down", "config_change": "diamond",
                                "flag_change": "square", "service": "circle"}
KIND_NAMES: dict[str, str] = {"deployment": "deploy", "config_change": "config", "flag_change": "flag",
                              "service": "service"}
STATUS_COLOURS = {"OPEN": "#d62728", "RESOLVED": "#7f7f7f"}
ONSET_COLOUR = "#d62728"
#: half-width of the baseline band in robust standard deviations (MAD x 1.4826)
BAND_K = 3.0
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "closest"}


def _dt(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), tz=UTC)


def change_summary(c: Change) -> str:
    """One line describing a change (what the hover of its marker shows)."""
    f = c.fields
    if c.kind == "deployment":
        ver = f.get("version", "?")
        prev = f.get("previous_version")
        what = f"deployed {ver}" + (f" (from {prev})" if prev else "")
        files = c.diff_files
        if files:
            what += f", {len(files)} file{'s' if len(files) != 1 else ''} changed"
    elif c.kind == "config_change":
        what = f"config {f.get('key', '?')}: {f.get('old_value', '∅')} → {f.get('new_value', '∅')}"
    elif c.kind == "flag_change":
        what = f"flag {f.get('flag', '?')}: {f.get('old_state', '?')} → {f.get('new_state', '?')}"
        if f.get("rollout_percent") is not None:
            what += f" ({f['rollout_percent']}% rollout)"
    else:
        what = c.kind
    who = f" by {c.author}" if c.author else ""
    desc = f" — {c.description}" if c.description else ""
    return f"{', '.join(c.services)} {what}{who}{desc}"


# ---- baseline band ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Band:
    centre: float
    lo: float
    hi: float
    points: int  # pre-onset points the spread was measured on


def robust_band(ts: Sequence[float], values: Sequence[float], *, onset: float, baseline: float | None,
                k: float = BAND_K) -> Band | None:
    """The expected range before onset: centred on the anomaly's ``baseline`` (else the
    pre-onset median), half-width ``k`` robust standard deviations (MAD x 1.4826) of the
    pre-onset points. ``None`` with fewer than 5 finite pre-onset points."""
    t = np.asarray(ts, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    pre = v[(t < onset) & np.isfinite(v)]
    if len(pre) < 5:
        return None
    med = float(np.median(pre))
    sigma = 1.4826 * float(np.median(np.abs(pre - med)))
    if sigma <= 0.0:  # a flat series: fall back to the standard deviation, then a sliver
        sigma = float(np.std(pre)) or max(abs(med) * 0.01, 1e-9)
    centre = med if baseline is None or not np.isfinite(baseline) else float(baseline)
    return Band(centre=centre, lo=centre - k * sigma, hi=centre + k * sigma, points=len(pre))


# ---- markers ------------------------------------------------------------------------------

def add_change_markers(fig: go.Figure, changes: Iterable[Change], *, row: int | None = None,
                       col: int | None = None, y: float | None = None, show_legend: bool = True) -> int:
    """Dotted vertical line per change plus a hoverable marker (kind colour and symbol);
    returns how many were drawn."""
    by_kind: dict[str, list[Change]] = {}
    for c in changes:
        by_kind.setdefault(c.kind, []).append(c)
    n = 0
    for kind, items in sorted(by_kind.items()):
        colour = KIND_COLOURS.get(kind, "#555555")
        xs = [_dt(c.ts) for c in items]
        for x in xs:
            fig.add_vline(x=x, line={"color": colour, "dash": "dot", "width": 1}, opacity=0.7, row=row, col=col)
        ys = [y] * len(xs) if y is not None else None
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=KIND_NAMES.get(kind, kind),
            marker={"symbol": KIND_SYMBOLS.get(kind, "x"), "size": 12, "color": colour,
                    "line": {"width": 1, "color": "white"}},
            hovertext=[f"<b>{c.id}</b> ({kind})<br>{_dt(c.ts):%Y-%m-%d %H:%M:%S} UTC<br>{change_summary(c)}"
                       for c in items],
            hoverinfo="text", showlegend=show_legend, legendgroup=f"chg-{kind}",
        ), row=row, col=col)
        n += len(items)
    return n


# ---- incidents ----------------------------------------------------------------------------

def incidents_overview(incidents: Sequence[Incident]) -> go.Figure:
    """Severity of each incident over time (top) and incidents started per time bucket (bottom)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08,
                        subplot_titles=("severity", "incidents started"))
    for status in ("OPEN", "RESOLVED"):
        incs = [i for i in incidents if i.status.upper() == status]
        if not incs:
            continue
        colour = STATUS_COLOURS[status]
        fig.add_trace(go.Scatter(
            x=[i.started_at for i in incs], y=[i.severity for i in incs], mode="markers", name=status.lower(),
            marker={"color": colour, "size": 8, "opacity": 0.8}, legendgroup=status,
            hovertext=[f"<b>{i.id}</b> {i.title}<br>severity {i.severity:.2f}, {i.anomaly_count} anomalies"
                       for i in incs], hoverinfo="text",
        ), row=1, col=1)
        fig.add_trace(go.Histogram(x=[i.started_at for i in incs], name=status.lower(), marker={"color": colour},
                                   legendgroup=status, showlegend=False, nbinsx=40), row=2, col=1)
    fig.update_layout(barmode="stack", height=380, **_LAYOUT)
    fig.update_yaxes(title_text="severity", row=1, col=1)
    fig.update_yaxes(title_text="count", row=2, col=1)
    return fig


# ---- evidence page ------------------------------------------------------------------------

def anomaly_figure(anomaly: Anomaly, series: Series, *, onset: datetime, changes: Sequence[Change] = (),
                   height: int = 300) -> go.Figure:
    """One anomalous metric around onset: the series, the baseline and its robust band from
    pre-onset points, the detected onset, and the change markers with hover text."""
    fig = go.Figure()
    ts = series.timestamps
    vals = series.values
    xs = [p.ts for p in series.points]
    band = robust_band(ts, vals, onset=anomaly.started_at.timestamp(), baseline=anomaly.baseline)
    if band is not None and xs:
        fig.add_trace(go.Scatter(x=[xs[0], xs[-1], xs[-1], xs[0]], y=[band.lo, band.lo, band.hi, band.hi],
                                 mode="lines", fill="toself", fillcolor="rgba(44,160,44,0.12)", line={"width": 0},
                                 name=f"baseline band (±{BAND_K:g} robust σ)", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[xs[0], xs[-1]], y=[band.centre, band.centre], mode="lines",
                                 line={"color": "#2ca02c", "dash": "dash", "width": 1.5},
                                 name=f"baseline {band.centre:.4g}", hoverinfo="name"))
    fig.add_trace(go.Scatter(x=xs, y=vals, mode="lines", name=anomaly.metric, line={"color": "#333333", "width": 1.6},
                             hovertemplate="%{x|%H:%M:%S} UTC<br>%{y:.4g}<extra></extra>"))
    fig.add_vline(x=_dt(anomaly.started_at), line={"color": ONSET_COLOUR, "width": 2})
    fig.add_trace(go.Scatter(x=[_dt(anomaly.started_at)], y=[anomaly.observed], mode="markers", name="onset",
                             marker={"color": ONSET_COLOUR, "size": 10, "symbol": "x"},
                             hovertext=[f"onset {anomaly.started_at:%H:%M:%S} UTC: {anomaly.direction} "
                                        f"{anomaly.baseline:.4g} → {anomaly.observed:.4g} (score {anomaly.score:.2f})"],
                             hoverinfo="text"))
    if abs((_dt(onset) - _dt(anomaly.started_at)).total_seconds()) > 1:
        fig.add_vline(x=_dt(onset), line={"color": ONSET_COLOUR, "width": 1, "dash": "dash"}, opacity=0.5)
    top = max([v for v in vals if np.isfinite(v)] + [anomaly.observed, band.hi if band else anomaly.observed])
    add_change_markers(fig, changes, y=top)
    lbl = "".join(f" {k}={v}" for k, v in sorted(anomaly.labels.items()))
    fig.update_layout(title={"text": f"{anomaly.service} · {anomaly.metric}{lbl}", "font": {"size": 14}},
                      height=height, legend={"orientation": "h", "y": -0.2}, **_LAYOUT)
    fig.update_xaxes(title_text=None)
    return fig


def suspect_label(s: Suspect) -> str:
    """How a suspect is named in the UI: its change id, or ``service:<name>`` for a service suspect."""
    if s.change_id:
        return s.change_id
    return f"service:{s.service}" if s.service else s.id


def suspects_figure(suspects: Sequence[Suspect]) -> go.Figure:
    """Scores of the ranked suspects, coloured by kind (change kinds and service suspects)."""
    fig = go.Figure()
    order = [f"#{s.rank} {suspect_label(s)}" for s in suspects]
    for kind in sorted({s.kind for s in suspects}):
        items = [s for s in suspects if s.kind == kind]
        fig.add_trace(go.Bar(
            y=[f"#{s.rank} {suspect_label(s)}" for s in items], x=[s.score for s in items], orientation="h",
            name=KIND_NAMES.get(kind, kind), marker={"color": KIND_COLOURS.get(kind, "#555555")},
            hovertext=[s.explanation for s in items], hoverinfo="text+x",
        ))
    fig.update_layout(height=max(160, 28 * len(suspects) + 80), barmode="overlay",
                      yaxis={"categoryorder": "array", "categoryarray": list(reversed(order))},
                      xaxis={"range": [0, 1], "title": "score (calibrated probability)"},
                      legend={"orientation": "h", "y": 1.15}, **_LAYOUT)
    return fig


def evidence_figure(evidence: Mapping[str, float], *, colour: str = "#1f77b4") -> go.Figure:
    """The evidence breakdown of one suspect: one bar per signal in [0, 1], strongest on top."""
    items = sorted(evidence.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k.replace("_", " ") for k, _ in items], orientation="h",
                           marker={"color": colour}, text=[f"{v:.2f}" for _, v in items], textposition="auto",
                           hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
    fig.update_layout(height=max(140, 24 * len(items) + 50), xaxis={"range": [0, 1]}, showlegend=False,
                      **{**_LAYOUT, "margin": {"l": 10, "r": 10, "t": 10, "b": 10}})
    return fig


def log_patterns_figure(patterns: Sequence[LogPattern], *, limit: int = 12) -> go.Figure:
    """Line counts before and after the change per pattern (new ones first)."""
    items = list(patterns)[:limit][::-1]
    names = [f"{'★ new · ' if p.new else ''}{p.service}: {_short(p.template, 70)}" for p in items]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=names, x=[p.before for p in items], orientation="h", name="before",
                         marker={"color": "#9ecae1"}, hovertext=[p.template for p in items]))
    fig.add_trace(go.Bar(y=names, x=[p.after for p in items], orientation="h", name="after",
                         marker={"color": "#d62728"}, hovertext=[p.template for p in items]))
    fig.update_layout(barmode="group", height=max(160, 34 * len(items) + 80), xaxis={"title": "log lines"},
                      legend={"orientation": "h", "y": 1.1}, **_LAYOUT)
    return fig


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- explorer -----------------------------------------------------------------------------

def explorer_figure(panels: Sequence[tuple[str, Series]], *, anomalies: Sequence[Anomaly] = (),
                    changes: Sequence[Change] = ()) -> go.Figure:
    """Several series on one shared time axis (one row each), with anomaly onsets and
    change markers overlaid on every row."""
    n = max(1, len(panels))
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[title for title, _ in panels] or [""])
    for r, (title, s) in enumerate(panels, start=1):
        fig.add_trace(go.Scatter(x=[p.ts for p in s.points], y=s.values, mode="lines", name=title,
                                 line={"width": 1.4}, showlegend=False,
                                 hovertemplate="%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{y:.4g}<extra>" + title + "</extra>"),
                      row=r, col=1)
        mine = [a for a in anomalies if a.service == s.service and a.metric == s.metric]
        for a in mine:
            end = a.ended_at or (s.points[-1].ts if s.points else a.started_at)
            fig.add_vrect(x0=_dt(a.started_at), x1=_dt(end), fillcolor="rgba(214,39,40,0.10)", line_width=0,
                          row=r, col=1)
        if mine:
            fig.add_trace(go.Scatter(
                x=[_dt(a.started_at) for a in mine], y=[a.observed for a in mine], mode="markers",
                marker={"color": ONSET_COLOUR, "symbol": "x", "size": 10}, name="anomaly onset",
                showlegend=r == 1, legendgroup="anomaly",
                hovertext=[f"{a.id} ({a.incident_id}) {a.direction} {a.baseline:.4g} → {a.observed:.4g}"
                           + (f"<br>{a.reason}" if a.reason else "") for a in mine], hoverinfo="text"),
                row=r, col=1)
        vals = [v for v in s.values if np.isfinite(v)]
        add_change_markers(fig, changes, row=r, col=1, y=max(vals) if vals else 0.0, show_legend=r == 1)
    fig.update_layout(height=max(260, 220 * n), legend={"orientation": "h", "y": 1.02 + 0.02 / n}, **_LAYOUT)
    return fig


# ---- changes ------------------------------------------------------------------------------

def changes_timeline(changes: Sequence[Change]) -> go.Figure:
    """The change log as a timeline: one row per service, one marker per change (kind
    colour and symbol; a flag change appears on each of its services)."""
    fig = go.Figure()
    services = sorted({s for c in changes for s in c.services})
    for kind in sorted({c.kind for c in changes}):
        xs, ys, texts = [], [], []
        for c in changes:
            if c.kind != kind:
                continue
            for s in c.services or ["?"]:
                xs.append(_dt(c.ts))
                ys.append(s)
                texts.append(f"<b>{c.id}</b> ({kind})<br>{_dt(c.ts):%Y-%m-%d %H:%M:%S} UTC<br>{change_summary(c)}")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=KIND_NAMES.get(kind, kind), hovertext=texts,
                                 hoverinfo="text", marker={"symbol": KIND_SYMBOLS.get(kind, "x"), "size": 12,
                                                           "color": KIND_COLOURS.get(kind, "#555555")}))
    fig.update_layout(height=max(220, 34 * len(services) + 120),
                      yaxis={"categoryorder": "array", "categoryarray": services[::-1], "title": None},
                      legend={"orientation": "h", "y": 1.1}, **_LAYOUT)
    return fig


# ---- model --------------------------------------------------------------------------------

def heldout_figure(versions: Sequence[ModelVersion], *, x: str = "version") -> go.Figure:
    """Held-out AC@1 / AC@3 / MRR of the blend (solid) and of the prior alone (dotted) per
    model version (``x="version"``) or per labels used (``x="labels_used"``: the learning curve)."""
    pts = [v for v in versions if v.heldout]
    fig = go.Figure()
    xs = [getattr(v, x) for v in pts]
    for key, colour in (("ac1", "#1f77b4"), ("ac3", "#2ca02c"), ("mrr", "#9467bd")):
        fig.add_trace(go.Scatter(x=xs, y=[v.heldout.get(key) for v in pts if v.heldout], mode="lines+markers",
                                 name=f"{key.upper()} model", line={"color": colour}))
        if any(v.heldout and f"prior_{key}" in v.heldout for v in pts):
            fig.add_trace(go.Scatter(x=xs, y=[v.heldout.get(f"prior_{key}") for v in pts if v.heldout],
                                     mode="lines", name=f"{key.upper()} prior", line={"color": colour, "dash": "dot"}))
    fig.update_layout(height=320, yaxis={"range": [0, 1.05], "title": "held-out"},
                      xaxis={"title": "model version" if x == "version" else "labels used"}, **_LAYOUT)
    return fig


def importance_figure(coefficients: Mapping[str, float]) -> go.Figure:
    """Feature importances: the learnt logistic-regression coefficient of each evidence
    signal (positive pushes a suspect up, negative down), largest magnitude on top."""
    items = sorted(coefficients.items(), key=lambda kv: abs(kv[1]))
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k.replace("_", " ") for k, _ in items], orientation="h",
                           marker={"color": ["#1f77b4" if v >= 0 else "#d62728" for _, v in items]},
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=max(200, 22 * len(items) + 60), xaxis={"title": "coefficient"}, showlegend=False,
                      **_LAYOUT)
    return fig
