import type { Metadata } from "next";
import Link from "next/link";
import { notFound } from "next/navigation";
import AutoRefresh from "@/components/AutoRefresh";
import SeriesChart, { type ChartMarker } from "@/components/SeriesChart";
import { serverApi, unwrap } from "@/lib/api";
import { refreshSeconds } from "@/lib/config";
import { fmtTime, kindLabel, parseTs } from "@/lib/format";

export const dynamic = "force-dynamic";

type Params = { params: { name: string } };

export async function generateMetadata({ params }: Params): Promise<Metadata> {
  return { title: `Service ${decodeURIComponent(params.name)}` };
}

const WINDOW_S = 3600;

export default async function ServicePage({ params }: Params) {
  const name = decodeURIComponent(params.name);
  const api = serverApi();
  const rows = await unwrap(api.GET("/services/metrics", { params: { query: { service: name } } }), "series");
  if (rows.length === 0) notFound();
  // one chart per metric: its label sets (pods, versions...) are averaged, as the series
  // endpoint does without a `label` matcher
  const byMetric = new Map<string, { metric: string; points: number; first_ts: string; last_ts: string; sets: number }>();
  for (const r of rows) {
    const m = byMetric.get(r.metric);
    if (!m) {
      byMetric.set(r.metric, { metric: r.metric, points: r.points, first_ts: r.first_ts, last_ts: r.last_ts, sets: 1 });
    } else {
      m.points += r.points;
      m.sets += 1;
      if ((parseTs(r.first_ts) ?? 0) < (parseTs(m.first_ts) ?? 0)) m.first_ts = r.first_ts;
      if ((parseTs(r.last_ts) ?? 0) > (parseTs(m.last_ts) ?? 0)) m.last_ts = r.last_ts;
    }
  }
  const series = [...byMetric.values()].sort((a, b) => a.metric.localeCompare(b.metric));
  const end = Math.max(...series.map((s) => parseTs(s.last_ts) ?? 0));
  const from = end - WINDOW_S;
  const [points, changes, incidents] = await Promise.all([
    Promise.all(
      series.map((s) =>
        unwrap(
          api.GET("/services/{service}/metrics/{metric}/series", {
            params: {
              path: { service: name, metric: s.metric },
              query: { since: String(from), until: String(end), step: WINDOW_S / 240 },
            },
          }),
          `series ${s.metric}`,
        ),
      ),
    ),
    unwrap(api.GET("/changes", { params: { query: { service: name, since: String(from), limit: 50 } } }), "changes"),
    unwrap(api.GET("/incidents", { params: { query: { service: name, limit: 10 } } }), "incidents"),
  ]);
  const markers: ChartMarker[] = changes.flatMap((c) => {
    const t = parseTs(c.ts);
    return t === null ? [] : [{ t, label: kindLabel(c.kind).split(" ")[0] ?? c.kind, kind: "change" as const }];
  });
  return (
    <article>
      <p className="crumbs">
        <Link href="/services">Services</Link> / {name}
      </p>
      <div className="title-row">
        <h1>{name}</h1>
        <AutoRefresh seconds={refreshSeconds() * 2} />
      </div>
      <p className="muted">
        The last hour of data (to {fmtTime(new Date(end * 1000).toISOString())}); vertical lines mark this
        service&apos;s changes.
      </p>
      <div className="charts">
        {series.map((s, i) => (
          <div className="panel" key={`${s.metric}-${i}`} id={s.metric}>
            <SeriesChart
              title={
                `${s.metric} (${s.points.toLocaleString("en-US")} points since ${fmtTime(s.first_ts)}` +
                (s.sets > 1 ? `; ${s.sets} label sets averaged)` : ")")
              }
              points={(points[i]?.points ?? []).map((p) => ({ t: parseTs(p.ts) ?? 0, v: p.value }))}
              markers={markers}
              from={from}
              to={end}
            />
          </div>
        ))}
      </div>
      <h2>Recent incidents</h2>
      {incidents.length === 0 ? (
        <p className="muted">None involve {name}.</p>
      ) : (
        <ul>
          {incidents.map((i) => (
            <li key={i.id}>
              <Link href={`/incidents/${encodeURIComponent(i.id)}`}>{i.title}</Link>{" "}
              <span className="muted">
                {i.status.toLowerCase()} · {fmtTime(i.started_at)}
              </span>
            </li>
          ))}
        </ul>
      )}
      <p>
        <Link href={`/changes?service=${encodeURIComponent(name)}`}>All changes of {name}</Link>
      </p>
    </article>
  );
}
