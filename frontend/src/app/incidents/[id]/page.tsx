import type { Metadata } from "next";
import Link from "next/link";
import { notFound, redirect } from "next/navigation";
import AutoRefresh from "@/components/AutoRefresh";
import Permalink from "@/components/Permalink";
import RerunButton from "@/components/RerunButton";
import SeriesChart, { type ChartMarker } from "@/components/SeriesChart";
import StatusBadge from "@/components/StatusBadge";
import SuspectCard from "@/components/SuspectCard";
import { ApiError, serverApi, unwrap } from "@/lib/api";
import { refreshSeconds } from "@/lib/config";
import { fmtDuration, fmtScore, fmtTime, fmtValue, parseTs } from "@/lib/format";
import type { Anomaly, Change, Label, Series, Suspect } from "@/lib/types";

export const dynamic = "force-dynamic";

type Params = { params: { id: string } };

export async function generateMetadata({ params }: Params): Promise<Metadata> {
  return { title: `Incident ${decodeURIComponent(params.id)}` };
}

const BEFORE_S = 1800; // chart window before the anomaly's onset
const AFTER_S = 1200; // and after it
const MAX_CHARTS = 8;

export default async function IncidentPage({ params }: Params) {
  const id = decodeURIComponent(params.id);
  const api = serverApi();
  const path = { incident_id: id };
  let incident;
  try {
    incident = await unwrap(api.GET("/incidents/{incident_id}", { params: { path } }), `incident ${id}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) notFound();
    throw e;
  }
  // An incident merged into another answers as that one: show it at its own address.
  if (incident.id !== id) redirect(`/incidents/${encodeURIComponent(incident.id)}`);

  const [anomalies, suspects, labels] = await Promise.all([
    unwrap(api.GET("/incidents/{incident_id}/anomalies", { params: { path } }), "anomalies"),
    unwrap(api.GET("/incidents/{incident_id}/suspects", { params: { path } }), "suspects"),
    unwrap(api.GET("/incidents/{incident_id}/labels", { params: { path } }), "labels"),
  ]);
  const changes = await changesOf(suspects);
  const charts = await seriesOf(anomalies);
  const latest = latestLabels(labels);
  const onset = parseTs(incident.started_at) ?? 0;
  const detected = parseTs(incident.detected_at) ?? onset;

  return (
    <article>
      <div className="title-row">
        <div>
          <p className="crumbs">
            <Link href="/incidents">Incidents</Link> / <span className="mono">{incident.id}</span>
          </p>
          <h1>
            <StatusBadge status={incident.status} /> {incident.title}
          </h1>
        </div>
        <AutoRefresh seconds={refreshSeconds() * 2} />
      </div>
      <dl className="facts">
        <div>
          <dt>Onset</dt>
          <dd>{fmtTime(incident.started_at)}</dd>
        </div>
        <div>
          <dt>Detected</dt>
          <dd>
            {fmtTime(incident.detected_at)} <span className="muted">({fmtDuration(detected - onset)} after onset)</span>
          </dd>
        </div>
        {incident.resolved_at ? (
          <div>
            <dt>Resolved</dt>
            <dd>{fmtTime(incident.resolved_at)}</dd>
          </div>
        ) : null}
        <div>
          <dt>Severity</dt>
          <dd>{fmtScore(incident.severity)}</dd>
        </div>
        <div>
          <dt>Anomalies</dt>
          <dd>{incident.anomaly_count}</dd>
        </div>
        <div>
          <dt>Services</dt>
          <dd>
            {incident.services.map((s, i) => (
              <span key={s}>
                {i ? ", " : ""}
                <Link href={`/services/${encodeURIComponent(s)}`}>{s}</Link>
              </span>
            ))}
          </dd>
        </div>
      </dl>
      <div className="actions">
        <Permalink path={`/incidents/${encodeURIComponent(incident.id)}`} />
        <RerunButton incidentId={incident.id} />
      </div>

      <section aria-labelledby="anomalies-h">
        <h2 id="anomalies-h">Anomalies</h2>
        <p className="muted">
          Red dashed line: the anomaly&apos;s onset. Numbered lines: the ranked suspects&apos; change times. Dotted:
          the detector&apos;s baseline.
        </p>
        <div className="charts">
          {charts.map(({ anomaly, series }) => {
            const t0 = parseTs(anomaly.started_at) ?? onset;
            const pts = (series?.points ?? []).map((p) => ({ t: parseTs(p.ts) ?? 0, v: p.value }));
            const last = pts.length ? pts[pts.length - 1]!.t : t0;
            const markers: ChartMarker[] = [{ t: t0, label: "onset", kind: "onset" }];
            for (const s of suspects.slice(0, 5)) {
              const ts = parseTs(s.ts);
              if (s.change_id && ts !== null) markers.push({ t: ts, label: `#${s.rank}`, kind: "change" });
            }
            return (
              <div key={anomaly.id} className="panel anomaly" data-testid="anomaly">
                <SeriesChart
                  title={`${anomaly.service} · ${anomaly.metric}`}
                  points={pts}
                  markers={markers}
                  baseline={anomaly.baseline}
                  from={t0 - BEFORE_S}
                  to={Math.max(Math.min(t0 + AFTER_S, last), t0 + 60)}
                />
                {anomaly.reason ? (
                  <p className="reason" data-testid="anomaly-reason">
                    <strong>Why anomalous:</strong> {anomaly.reason}
                  </p>
                ) : null}
                <p className="muted">
                  {anomaly.direction === "up" ? "up" : "down"} from {fmtValue(anomaly.baseline)} to{" "}
                  {fmtValue(anomaly.observed)} (score {anomaly.score.toFixed(1)}), onset {fmtTime(anomaly.started_at)}
                  {anomaly.ended_at ? `, recovered ${fmtTime(anomaly.ended_at)}` : ""}
                  {anomaly.join_reason ? ` · joined: ${anomaly.join_reason}` : ""}
                </p>
              </div>
            );
          })}
          {anomalies.length > MAX_CHARTS ? (
            <p className="muted">and {anomalies.length - MAX_CHARTS} more anomalies (the strongest are shown).</p>
          ) : null}
        </div>
      </section>

      <section aria-labelledby="suspects-h">
        <h2 id="suspects-h">Ranked suspects</h2>
        {incident.no_convincing_change ? (
          <p className="panel warn" role="note">
            No candidate change is convincing: the cause may be outside the recorded changes (traffic, a dependency,
            infrastructure).
          </p>
        ) : null}
        {suspects.length === 0 ? (
          <p className="panel">No suspects yet: RCA runs shortly after detection.</p>
        ) : (
          <ol className="suspects">
            {suspects.map((s) => (
              <SuspectCard
                key={s.id}
                suspect={s}
                change={s.change_id ? changes.get(s.change_id) : undefined}
                label={s.change_id ? latest.get(s.change_id) ?? null : null}
                labelled={labels.length > 0}
                onset={incident.started_at}
              />
            ))}
          </ol>
        )}
      </section>

      {labels.length ? (
        <section aria-labelledby="labels-h">
          <h2 id="labels-h">Labels</h2>
          <ul className="labels">
            {labels.map((l) => (
              <li key={l.id}>
                <span className="mono">{l.change_id}</span>: {l.verdict === "cause" ? "cause" : "not the cause"}
                {l.author ? ` by ${l.author}` : ""} <span className="muted">{fmtTime(l.created_at)}</span>
                {l.note ? ` · ${l.note}` : ""}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </article>
  );
}

function latestLabels(labels: Label[]): Map<string, Label> {
  const out = new Map<string, Label>();
  for (const l of labels) {
    // a label names a change, or (change_id null) a root-service suspect: key it by what it names
    const key = l.change_id ?? `service:${l.service ?? ""}`;
    const prev = out.get(key);
    if (!prev || l.created_at >= prev.created_at) out.set(key, l);
  }
  return out;
}

async function changesOf(suspects: Suspect[]): Promise<Map<string, Change>> {
  const api = serverApi();
  const ids = [...new Set(suspects.slice(0, 20).flatMap((s) => (s.change_id ? [s.change_id] : [])))];
  const got = await Promise.all(
    ids.map(async (id) => {
      const { data } = await api.GET("/changes/{change_id}", { params: { path: { change_id: id } } });
      return data;
    }),
  );
  return new Map(got.flatMap((c) => (c ? [[c.id, c] as const] : [])));
}

async function seriesOf(anomalies: Anomaly[]): Promise<{ anomaly: Anomaly; series: Series | undefined }[]> {
  const api = serverApi();
  const seen = new Set<string>();
  const picked = [...anomalies]
    .sort((a, b) => b.score - a.score)
    .filter((a) => {
      const k = `${a.service}\u0000${a.metric}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .slice(0, MAX_CHARTS)
    .sort((a, b) => (a.started_at < b.started_at ? -1 : 1));
  return Promise.all(
    picked.map(async (anomaly) => {
      const t0 = parseTs(anomaly.started_at) ?? 0;
      const { data } = await api.GET("/services/{service}/metrics/{metric}/series", {
        params: {
          path: { service: anomaly.service, metric: anomaly.metric },
          query: {
            since: String(t0 - BEFORE_S),
            until: String(t0 + AFTER_S),
            step: Math.max(1, Math.round((BEFORE_S + AFTER_S) / 240)),
          },
        },
      });
      return { anomaly, series: data };
    }),
  );
}
