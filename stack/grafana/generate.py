"""Generate the Grafana dashboards of the stack from code (Grafana Foundation SDK).

    python stack/grafana/generate.py           # write stack/grafana/dashboards/*.json
    python stack/grafana/generate.py --check   # exit 1 when the committed JSON is stale

The dashboards are never edited by hand: change this file and regenerate (a test checks
that the committed JSON equals what this script generates, and that every metric a panel
queries is exported by the live processes). Panels read the Prometheus datasource with
uid ``prometheus`` provisioned from ``provisioning/datasources/prometheus.yml``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="prometheus")


@dataclass(frozen=True)
class Q:
    """One query of a panel: PromQL and the legend of its series."""

    expr: str
    legend: str = ""


def _targets(panel: timeseries.Panel | stat.Panel, queries: list[Q]) -> None:
    for i, q in enumerate(queries):
        t = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i))
        if q.legend:
            t = t.legend_format(q.legend)
        panel.with_target(t)


def series(title: str, queries: list[Q], *, unit: str = "short", description: str = "", span: int = 12,
           stack: bool = False) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).description(description).datasource(DS).unit(unit).span(span).height(8)
         .fill_opacity(10).line_width(1)
         .legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                 .placement(cm.LegendPlacement.BOTTOM).show_legend(True)))
    if stack:
        p = p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    _targets(p, queries)
    return p


def single(title: str, query: Q, *, unit: str = "short", description: str = "", span: int = 4,
           decimals: int | None = None) -> stat.Panel:
    p = (stat.Panel().title(title).description(description).datasource(DS).unit(unit).span(span).height(4)
         .graph_mode(cm.BigValueGraphMode.AREA)
         .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    if decimals is not None:
        p = p.decimals(decimals)
    _targets(p, [query])
    return p


def _board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(["rca", "workbench"])
            .refresh("30s").time("now-6h", "now").timezone("browser").editable())


def system_health() -> dashboard.Dashboard:
    d = _board("rca-system-health", "RCA · System health",
               "Is every process up, is data arriving, what is refused, what fails.")
    d.with_row(dashboard.Row("Processes"))
    d.with_panel(single("Processes up", Q('sum(up{job=~"rca.*"})'), span=8,
                        description="API and stage-worker processes answering scrapes"))
    d.with_panel(single("Processes down", Q('count(up{job=~"rca.*"} == 0) or vector(0)'), span=8,
                        description="processes Prometheus could not scrape (alert RcaProcessDown)"))
    d.with_panel(single("Events ingested per second", Q("sum(rca:ingest_events:rate1m)"), unit="ops", span=8))
    d.with_panel(series("Up, per process", [Q('up{job=~"rca.*"}', "{{job}} {{instance}}")], span=12))
    d.with_panel(series("Resident memory", [Q('process_resident_memory_bytes{job=~"rca.*"}', "{{job}} {{instance}}")],
                        unit="bytes", span=6))
    d.with_panel(series("CPU", [Q('rate(process_cpu_seconds_total{job=~"rca.*"}[5m])', "{{job}} {{instance}}")],
                        unit="percentunit", span=6))
    d.with_row(dashboard.Row("Ingest"))
    d.with_panel(series("Ingest rate by kind", [Q("rca:ingest_events:rate1m", "{{kind}}")], unit="ops", span=12,
                        stack=True, description="points, log records and changes accepted per second"))
    d.with_panel(series("Rejected batches (4xx) by kind", [Q("rca:ingest_rejects:rate5m", "{{kind}}")], unit="ops",
                        span=6, description="invalid batches, cardinality limits: nothing of them was stored"))
    d.with_panel(series("Refused requests by reason", [Q("rca:refused_requests:rate5m", "{{reason}}")], unit="ops",
                        span=6, description="rate_limit: 429 (RCA_LIMITS__*); backpressure: 503 while the "
                                            "pipeline is behind"))
    d.with_panel(series("HTTP p95 latency by route", [Q(
        "histogram_quantile(0.95, sum by (route, le) (rate(rca_http_request_seconds_bucket[5m])))", "{{route}}")],
        unit="s", span=12))
    d.with_row(dashboard.Row("Errors and the shared state"))
    d.with_panel(series("Store errors by component", [Q("rca:store_errors:rate5m", "{{component}}")], unit="ops",
                        span=6, description="reads or writes of the state or telemetry store that failed"))
    d.with_panel(series("Limiter and cache errors", [Q(
        "sum by (component) (rate(rca_shared_state_errors_total[5m]))", "{{component}}")], unit="ops", span=6,
        description="Redis calls that failed: requests went through unlimited, answers were computed"))
    d.with_panel(series("Query cache hit ratio", [Q(
        'sum(rate(rca_cache_requests_total{result="hit"}[5m])) / sum(rate(rca_cache_requests_total[5m]))',
        "hit ratio")], unit="percentunit", span=12))
    return d


def pipeline() -> dashboard.Dashboard:
    d = _board("rca-pipeline", "RCA · Pipeline latency and lag",
               "How far behind each stage is, how long each stage takes, what it handles.")
    d.with_row(dashboard.Row("Lag"))
    d.with_panel(single("Pending events", Q("max(rca_pending_events)"), span=8,
                        description="messages some stage has not finished: 0 when everything ingested is processed"))
    d.with_panel(single("Detector lag", Q('sum(rca:bus_lag_stage:sum{stage="detector"})'), span=8))
    d.with_panel(single("Late points", Q("max(rca_late_points)"), span=8,
                        description="points older than their series' newest point: stored, not detected"))
    d.with_panel(series("Lag per stage", [Q("rca:bus_lag_stage:sum", "{{stage}}")], span=12,
                        description="messages published to a stage's topic and not yet acknowledged "
                                    "(alert RcaBusLagGrowing)"))
    d.with_panel(series("Lag per partition", [Q("rca:bus_lag:max", "{{stage}} p{{partition}}")], span=12,
                        description="a partition that alone grows points at one slow or stuck detector worker"))
    d.with_row(dashboard.Row("Latency"))
    d.with_panel(series("Stage batch p95", [Q("rca:stage_batch_seconds:p95_5m", "{{stage}}")], unit="s", span=12,
                        description="time a worker spends on one polled batch, effects stored"))
    d.with_panel(series("Detector p50 / p95 per metric batch", [
        Q("histogram_quantile(0.5, sum by (le) (rate(rca_detect_batch_seconds_bucket[5m])))", "p50"),
        Q("rca:detect_batch_seconds:p95_5m", "p95")], unit="s", span=6))
    d.with_panel(series("RCA p50 / p95 per incident", [
        Q("histogram_quantile(0.5, sum by (le) (rate(rca_analysis_seconds_bucket[5m])))", "p50"),
        Q("rca:analysis_seconds:p95_5m", "p95")], unit="s", span=6))
    d.with_row(dashboard.Row("Throughput and errors"))
    d.with_panel(series("Messages handled per second", [Q("rca:stage_messages:rate1m", "{{stage}}")], unit="ops",
                        span=6))
    d.with_panel(series("Stage errors per second", [Q("rca:stage_errors:rate5m", "{{stage}}")], unit="ops", span=6,
                        description="failed batches (alerts RcaAnalysisFailing, RcaStageFailing)"))
    return d


def incidents_and_model() -> dashboard.Dashboard:
    d = _board("rca-incidents-model", "RCA · Incidents and model quality",
               "Incidents over time, the labels analysts gave, the ranking model they trained.")
    d.with_row(dashboard.Row("Incidents"))
    d.with_panel(single("Open incidents", Q('max(rca_incidents{status="OPEN"})'), span=8))
    d.with_panel(single("Labels", Q("max(rca_labels)"), span=8, description="verdicts given by analysts"))
    d.with_panel(single("Model version", Q("max(rca_model_version)"), span=8,
                        description="0 while only the heuristic prior ranks"))
    d.with_panel(series("Incidents by status", [Q("max by (status) (rca_incidents)", "{{status}}")], span=12))
    d.with_panel(series("New incidents per hour", [Q(
        'sum(clamp_min(delta(rca_incidents{status="OPEN"}[1h]), 0) + clamp_min(delta(rca_incidents{status="RESOLVED"}[1h]), 0))',
        "incidents")], span=12, description="growth of the stored incidents (merges and deletions not subtracted)"))
    d.with_row(dashboard.Row("Model quality"))
    d.with_panel(series("Held-out accuracy: learnt model and the prior", [
        Q('max by (measure) (rca_model_heldout{measure!~"prior_.*"})', "model {{measure}}"),
        Q('max by (measure) (rca_model_heldout{measure=~"prior_.*"})', "{{measure}}")],
        unit="percentunit", span=12,
        description="AC@1, AC@3 and MRR on labelled incidents held out of training, the heuristic prior beside "
                    "the learnt model on the same folds"))
    d.with_panel(series("Labels used and model version", [Q("max(rca_model_labels_used)", "labels used"),
                                                          Q("max(rca_model_version)", "version")], span=6))
    d.with_panel(series("Blend weight of the learnt model", [Q("max(rca_model_blend_weight)", "weight")],
                        unit="percentunit", span=6, description="0: the prior ranks alone; 1: the model alone"))
    return d


DASHBOARDS = {"system-health.json": system_health, "pipeline.json": pipeline,
              "incidents-model.json": incidents_and_model}


def render() -> dict[str, str]:
    enc = JSONEncoder(sort_keys=True, indent=2)
    out = {}
    for name, build in DASHBOARDS.items():
        model = build().build()
        for i, panel in enumerate(model.panels or [], start=1):  # stable ids, in layout order
            panel.id_val = i
        out[name] = enc.encode(model) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = p.parse_args(argv)
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale dashboards: {', '.join(stale)}; run `python stack/grafana/generate.py` and commit",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
