import type { Metadata } from "next";
import Link from "next/link";
import { z } from "zod";
import ChangeDetails from "@/components/ChangeDetails";
import { serverApi, unwrap } from "@/lib/api";
import { fmtTime, kindLabel } from "@/lib/format";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Change log" };

const KindParam = z.enum(["deployment", "config_change", "flag_change"]).optional().catch(undefined);

type Search = { kind?: string; service?: string };

export default async function ChangesPage({ searchParams }: { searchParams: Search }) {
  const kind = KindParam.parse(searchParams.kind);
  const service = searchParams.service || undefined;
  const api = serverApi();
  const [changes, services] = await Promise.all([
    unwrap(api.GET("/changes", { params: { query: { kind, service, limit: 300 } } }), "changes"),
    unwrap(api.GET("/services"), "services"),
  ]);
  return (
    <section>
      <h1>Change log</h1>
      <form className="filters" method="get" action="/changes">
        <label>
          Kind
          <select name="kind" defaultValue={kind ?? ""}>
            <option value="">all</option>
            <option value="deployment">deployments</option>
            <option value="config_change">config changes</option>
            <option value="flag_change">flag changes</option>
          </select>
        </label>
        <label>
          Service
          <select name="service" defaultValue={service ?? ""}>
            <option value="">all</option>
            {services
              .map((s) => s.name)
              .sort()
              .map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
          </select>
        </label>
        <button type="submit">Apply</button>
      </form>
      <p className="muted">
        {changes.length} change{changes.length === 1 ? "" : "s"}, newest first
      </p>
      {changes.length === 0 ? (
        <p className="panel">No changes recorded{kind || service ? " for these filters" : ""}.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="sr-only">Change events, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Kind</th>
                <th scope="col">Id</th>
                <th scope="col">Service</th>
                <th scope="col">What changed</th>
                <th scope="col">Author</th>
              </tr>
            </thead>
            <tbody>
              {changes.map((c) => {
                const svcs = c.services ?? (c.service ? [c.service] : []);
                return (
                  <tr key={c.id} id={`change-${c.id}`} data-testid="change-row">
                    <td className="nowrap">{fmtTime(c.ts)}</td>
                    <td>
                      <span className={`badge kind-${c.kind}`}>{kindLabel(c.kind)}</span>
                    </td>
                    <td className="mono">{c.id}</td>
                    <td>
                      {svcs.map((s, i) => (
                        <span key={s}>
                          {i ? ", " : ""}
                          <Link href={`/services/${encodeURIComponent(s)}`}>{s}</Link>
                        </span>
                      ))}
                    </td>
                    <td>
                      <ChangeDetails change={c} />
                      {c.description ? <div className="muted">{c.description}</div> : null}
                    </td>
                    <td>{c.author ?? "–"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
