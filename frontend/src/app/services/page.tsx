import type { Metadata } from "next";
import Link from "next/link";
import { serverApi, unwrap } from "@/lib/api";
import { fmtTime } from "@/lib/format";
import type { SeriesInfo } from "@/lib/types";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Services" };

export default async function ServicesPage() {
  const api = serverApi();
  const [services, series] = await Promise.all([
    unwrap(api.GET("/services"), "services"),
    unwrap(api.GET("/services/metrics", { params: { query: {} } }), "series"),
  ]);
  const bySvc = new Map<string, SeriesInfo[]>();
  for (const s of series) bySvc.set(s.service, [...(bySvc.get(s.service) ?? []), s]);
  const sorted = [...services].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section>
      <h1>Services</h1>
      <p className="muted">{sorted.length} services reporting metrics. Open one to see its series.</p>
      {sorted.length === 0 ? (
        <p className="panel">No service has sent metrics yet.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="sr-only">Services and their metrics</caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Metrics (points stored)</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {sorted.map((svc) => (
                <tr key={svc.name} data-testid="service-row">
                  <td>
                    <Link href={`/services/${encodeURIComponent(svc.name)}`}>{svc.name}</Link>
                  </td>
                  <td>
                    {(bySvc.get(svc.name) ?? [])
                      .map((m) => `${m.metric} (${m.points.toLocaleString("en-US")})`)
                      .join(", ") || svc.metrics.join(", ")}
                  </td>
                  <td className="nowrap">{fmtTime(svc.last_seen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
