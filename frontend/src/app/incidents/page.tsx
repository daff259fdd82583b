import type { Metadata } from "next";
import Link from "next/link";
import AutoRefresh from "@/components/AutoRefresh";
import IncidentFilters from "@/components/IncidentFilters";
import ServerDown from "@/components/ServerDown";
import StatusBadge from "@/components/StatusBadge";
import { ApiUnreachable, serverApi, unwrap } from "@/lib/api";
import { refreshSeconds } from "@/lib/config";
import { fmtScore, fmtTime, kindLabel } from "@/lib/format";
import { StatusParam } from "@/lib/sim";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Incidents" };

type Search = { status?: string; service?: string };

export default async function IncidentsPage({ searchParams }: { searchParams: Search }) {
  const status = StatusParam.parse(searchParams.status);
  const service = searchParams.service || undefined;
  const api = serverApi();
  let incidents, services;
  try {
    [incidents, services] = await Promise.all([
      unwrap(api.GET("/incidents", { params: { query: { status, service, limit: 200 } } }), "incidents"),
      unwrap(api.GET("/services"), "services"),
    ]);
  } catch (e) {
    if (e instanceof ApiUnreachable) return <ServerDown message={e.message} refreshSeconds={refreshSeconds()} />;
    throw e;
  }
  const names = services.map((s) => s.name).sort();
  const open = incidents.filter((i) => i.status === "OPEN").length;
  return (
    <section>
      <div className="title-row">
        <h1>Incidents</h1>
        <AutoRefresh seconds={refreshSeconds()} />
      </div>
      <IncidentFilters services={names} />
      <p className="muted" data-testid="incident-count">
        {incidents.length} incident{incidents.length === 1 ? "" : "s"}
        {status || service ? " matching the filters" : ""}, {open} open
      </p>
      {incidents.length === 0 ? (
        <p className="panel">No incidents{status || service ? " match these filters" : " yet"}.</p>
      ) : (
        <div className="table-wrap">
          <table className="incidents">
            <caption className="sr-only">Incidents, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Incident</th>
                <th scope="col">Services</th>
                <th scope="col">Severity</th>
                <th scope="col">Onset</th>
                <th scope="col">Top suspect</th>
              </tr>
            </thead>
            <tbody>
              {incidents.map((inc) => (
                <tr key={inc.id} data-testid="incident-row" data-incident={inc.id}>
                  <td>
                    <StatusBadge status={inc.status} />
                  </td>
                  <td>
                    <Link href={`/incidents/${encodeURIComponent(inc.id)}`}>{inc.title}</Link>
                    <div className="muted mono">{inc.id}</div>
                  </td>
                  <td className="services-cell">
                    {inc.services.slice(0, 4).join(", ")}
                    {inc.services.length > 4 ? ` +${inc.services.length - 4}` : ""}
                  </td>
                  <td>
                    <span className="sev" aria-hidden="true">
                      <span className="fill" style={{ width: `${Math.round(inc.severity * 100)}%` }} />
                    </span>{" "}
                    {fmtScore(inc.severity)}
                  </td>
                  <td className="nowrap">{fmtTime(inc.started_at)}</td>
                  <td>
                    {inc.top_suspect ? (
                      <>
                        <span className="mono">{inc.top_suspect.change_id ?? inc.top_suspect.id}</span>{" "}
                        <span className="muted">
                          {kindLabel(inc.top_suspect.kind)} · {fmtScore(inc.top_suspect.score)}
                        </span>
                      </>
                    ) : inc.no_convincing_change ? (
                      <span className="muted">no convincing change</span>
                    ) : (
                      <span className="muted">ranking…</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
