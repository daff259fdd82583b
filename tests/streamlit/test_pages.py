"""Every page of ``rca ui`` run with Streamlit's AppTest against real embedded servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from streamlit.testing.v1 import AppTest

from server.embedded import EmbeddedServer
from tests.streamlit.conftest import incident_with_change_suspect
from workbench.client import RcaClient

INCIDENTS = "ui/pages/incidents.py"
INCIDENT = "ui/pages/incident.py"
EXPLORER = "ui/pages/explorer.py"
CHANGES = "ui/pages/changes.py"
MODEL = "ui/pages/model.py"
ALL_PAGES = (INCIDENTS, INCIDENT, EXPLORER, CHANGES, MODEL)

App = Callable[..., AppTest]


def _texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _frame(at: AppTest, column: str) -> Any:
    """The first table with this column (display-only tables carry no key in AppTest)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column")


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


# ---- Incidents --------------------------------------------------------------------------------

def test_incidents_page_lists_filters_and_opens(app: App, replayed_server: EmbeddedServer) -> None:
    with RcaClient(replayed_server.url) as c:
        incs = c.incidents(limit=1000)
        open_ids = {i.id for i in c.incidents(status="OPEN", limit=1000)}
    at = app(replayed_server.url)
    _no_exceptions(at)
    assert _texts(at, "title") == ["Incidents"]
    table = at.dataframe(key="table").value
    assert list(table["id"]) == [i.id for i in incs][: len(table)]
    assert at.metric[0].value == str(len(incs))
    assert _charts(at) == 1  # severity and count over time

    at.selectbox(key="status").set_value("OPEN").run()
    _no_exceptions(at)
    shown = set(at.dataframe(key="table").value["id"])
    assert shown == open_ids or (not open_ids and at.info)

    at.selectbox(key="status").set_value("all").run()
    target = incs[-1].id
    at.selectbox[-1].set_value(target)  # "Open an incident", submitted with the form's button
    [b for b in at.button if b.label == "Open evidence"][0].click().run()
    _no_exceptions(at)
    assert _texts(at, "title") == ["Incident evidence"]
    assert at.header[0].value.startswith(f"{target} ·")


def test_thousands_of_incidents_are_paginated(app: App, many_server: EmbeddedServer) -> None:
    at = app(many_server.url)
    _no_exceptions(at)
    assert at.metric[0].value == "5,000"
    assert len(at.dataframe(key="table").value) == 50
    pager = at.get("pagination")[0]
    assert pager.num_pages == 100
    pager.set_value(3).run()
    _no_exceptions(at)
    with RcaClient(many_server.url) as c:
        expected = [i.id for i in c.incidents(limit=50, offset=100)]
    assert list(at.dataframe(key="table").value["id"]) == expected

    at.selectbox(key="size").set_value(200).run()
    assert len(at.dataframe(key="table").value) == 200

    # a deep link with the page and filters in the query string opens on that page
    linked = app(many_server.url, status="OPEN", page="2", size="25")
    _no_exceptions(linked)
    with RcaClient(many_server.url) as c:
        expected = [i.id for i in c.incidents(status="OPEN", limit=25, offset=25)]
    assert list(linked.dataframe(key="table").value["id"]) == expected


# ---- Incident evidence --------------------------------------------------------------------------

def test_evidence_page_charts_suspects_and_patterns(app: App, replayed_server: EmbeddedServer) -> None:
    inc = incident_with_change_suspect(replayed_server.url)
    with RcaClient(replayed_server.url) as c:
        anomalies = c.anomalies(inc.id)
        sus = c.suspects(inc.id)
        patterns = c.log_patterns(inc.id)
    at = app(replayed_server.url, INCIDENT, id=inc.id)
    _no_exceptions(at)
    assert at.header[0].value == f"{inc.id} · {inc.title}"
    subs = _texts(at, "subheader")
    assert f"Anomalous metrics ({len(anomalies)})" in subs and f"Ranked suspects ({len(sus)})" in subs
    series = {(a.service, a.metric) for a in anomalies}
    # one chart per anomalous series, the suspects-by-kind chart, one evidence chart per shown
    # suspect with evidence, and the log patterns chart when there are patterns
    shown = [s for s in sus[:10] if s.evidence]
    assert _charts(at) == len(series) + 1 + len(shown) + (1 if patterns.patterns else 0)
    table = _frame(at, "explanation")
    assert list(table["kind"]) == [s.kind for s in sus]
    assert sus[0].explanation in " ".join(m.value for m in at.markdown)
    # every charted anomaly says why it is anomalous
    first = {}
    for a in sorted(anomalies, key=lambda a: a.started_at):
        first.setdefault((a.service, a.metric, tuple(sorted(a.labels.items()))), a)
    shown_md = " ".join(m.value for m in at.markdown)
    assert all(a.reason and f"**Why anomalous:** {a.reason}" in shown_md for a in first.values())
    assert patterns.change_id == inc.top_suspect.change_id  # type: ignore[union-attr]


def test_labelling_from_the_evidence_page_reaches_the_server(app: App, replayed_server: EmbeddedServer) -> None:
    inc = incident_with_change_suspect(replayed_server.url)
    with RcaClient(replayed_server.url) as c:
        top = c.suspects(inc.id)[0]
        before = len(c.labels(inc.id))
    at = app(replayed_server.url, INCIDENT, id=inc.id)
    at.session_state["author"] = "pytest-analyst"
    at.button(key=f"cause-{top.id}").click().run()
    _no_exceptions(at)
    assert any("as the cause" in s for s in _texts(at, "success")), _texts(at, "error")
    with RcaClient(replayed_server.url) as c:
        labels = c.labels(inc.id)
    assert len(labels) == before + 1
    new = labels[-1]
    assert (new.change_id, new.suspect_id, new.verdict, new.author) == (top.change_id, top.id, "cause",
                                                                        "pytest-analyst")
    # the page shows the label it just saved
    assert "cause" in list(_frame(at, "explanation")["label"])


def test_label_another_change_and_rerun_rca(app: App, replayed_server: EmbeddedServer) -> None:
    inc = incident_with_change_suspect(replayed_server.url)
    at = app(replayed_server.url, INCIDENT, id=inc.id)
    options = at.selectbox(key="other_change").options
    assert options, "the candidate window has changes to pick from"
    other = options[-1].split(" · ")[0]  # options are shown as "<id> · <summary>"
    at.selectbox(key="other_change").set_value(other)
    at.radio(key="other_verdict").set_value("not cause")
    at.text_input(key="other_note").set_value("checked the dashboards")
    [b for b in at.button if b.label == "Save label"][0].click().run()
    _no_exceptions(at)
    assert any(f"Labelled {other}" in s for s in _texts(at, "success")), _texts(at, "error")
    with RcaClient(replayed_server.url) as c:
        last = c.labels(inc.id)[-1]
    assert (last.change_id, last.verdict, last.note) == (other, "not_cause", "checked the dashboards")

    at.button(key="rerun").click().run()
    _no_exceptions(at)
    assert any(s.startswith("RCA rerun done: top suspect") for s in _texts(at, "success")), _texts(at, "warning")


def test_service_suspect_is_shown_and_labelled_by_suspect_id(app: App, many_server: EmbeddedServer) -> None:
    at = app(many_server.url, INCIDENT, id="inc-1")
    _no_exceptions(at)
    table = _frame(at, "explanation")
    assert list(table["kind"])[:2] == ["deployment", "service"]
    assert list(table["suspect"])[1] == "service:payments"
    assert any("root-cause service" in c.value for c in at.caption)
    at.button(key="cause-sus-inc-1-svc").click().run()
    _no_exceptions(at)
    with RcaClient(many_server.url) as c:
        labels = [lb for lb in c.labels("inc-1") if lb.suspect_id == "sus-inc-1-svc"]
    if labels:  # a server that takes service labels stores it under the suspect's id
        assert labels[-1].verdict == "cause"
        assert any("service:payments as the cause" in s for s in _texts(at, "success"))
    else:  # a server that only takes change labels says why, and the page shows it
        assert any("Label not saved" in s and "suspect" in s for s in _texts(at, "error"))


def test_unknown_incident_says_so(app: App, replayed_server: EmbeddedServer) -> None:
    at = app(replayed_server.url, INCIDENT, id="inc-does-not-exist")
    _no_exceptions(at)
    assert any("inc-does-not-exist" in w and "not found" in w for w in _texts(at, "warning"))


# ---- Explorer, Changes, Model -------------------------------------------------------------------

def test_explorer_aligns_metrics_with_anomalies_and_changes(app: App, replayed_server: EmbeddedServer) -> None:
    inc = incident_with_change_suspect(replayed_server.url)
    with RcaClient(replayed_server.url) as c:
        a = c.anomalies(inc.id)[0]
        metrics = sorted({s.metric for s in c.service_metrics(service=a.service)})
    at = app(replayed_server.url, EXPLORER)
    _no_exceptions(at)
    at.multiselect(key="services").set_value([a.service]).run()
    at.multiselect(key="series").set_value([f"{a.service}/{m}" for m in metrics]).run()
    at.selectbox(key="range").set_value("all").run()
    _no_exceptions(at)
    assert _charts(at) == 1
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in fig["data"]}
    assert {f"{a.service}/{m}" for m in metrics} <= names  # one row per metric ...
    n = len(metrics)
    assert all(fig["layout"][f"xaxis{i if i > 1 else ''}"].get("matches") == f"x{n}" for i in range(1, n))  # shared axis
    assert "anomaly onset" in names
    caption = " ".join(c.value for c in at.caption)
    assert " 0 anomalies" not in caption and "anomalies" in caption


def test_changes_page_links_changes_to_their_incidents(app: App, replayed_server: EmbeddedServer) -> None:
    inc = incident_with_change_suspect(replayed_server.url)
    cid = inc.top_suspect.change_id  # type: ignore[union-attr]
    at = app(replayed_server.url, CHANGES, id=str(cid))
    _no_exceptions(at)
    assert _charts(at) == 1  # the timeline
    assert at.subheader[0].value.startswith(f"{cid} ·")
    assert any(m.value.startswith("**Suspect in") for m in at.markdown)
    assert inc.id in list(_frame(at, "incident")["incident"])
    links = at.get("page_link")
    assert any(inc.id in str(link.proto.label) for link in links)

    at.selectbox(key="kind").set_value("flag_change").run()
    _no_exceptions(at)
    if at.dataframe:
        assert set(_frame(at, "what")["kind"]) == {"flag_change"}


def test_model_page(app: App, replayed_server: EmbeddedServer) -> None:
    with RcaClient(replayed_server.url) as c:
        info = c.model()
    at = app(replayed_server.url, MODEL)
    _no_exceptions(at)
    assert info is not None
    assert at.metric[0].value == str(info["version"])
    assert at.metric[1].value == str(info["labels_used"])
    assert "Feature importances" in _texts(at, "subheader")


# ---- no data, down or slow server ---------------------------------------------------------------

def test_every_page_with_no_data(app: App, empty_server: EmbeddedServer) -> None:
    expected = {INCIDENTS: "No incidents yet", INCIDENT: "No incidents yet", EXPLORER: "No metrics stored yet",
                CHANGES: "No changes recorded yet", MODEL: "No learnt model yet"}
    for page in ALL_PAGES:
        at = app(empty_server.url, page)
        _no_exceptions(at)
        assert not at.error, (page, _texts(at, "error"))
        assert any(expected[page] in i for i in _texts(at, "info")), (page, _texts(at, "info"))


def test_every_page_says_when_the_server_is_down_and_retries(app: App, down_url: str) -> None:
    for page in ALL_PAGES:
        at = app(down_url, page, id="inc-1")
        _no_exceptions(at)
        errors = _texts(at, "error")
        assert any(f"Cannot reach the RCA server at {down_url}" in e for e in errors), (page, errors)
        assert at.button(key="retry").label == "Retry"
        at.button(key="retry").click().run()
        _no_exceptions(at)
        assert any("Cannot reach" in e for e in _texts(at, "error"))


def test_a_slow_server_gets_a_clear_message(app: App, silent_server: str) -> None:
    at = app(silent_server, INCIDENTS, timeout=0.5)
    _no_exceptions(at)
    assert any("is slow" in e and "0.5 s" in e for e in _texts(at, "error")), _texts(at, "error")
    assert at.button(key="retry")
