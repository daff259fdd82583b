"use client";

import Link from "next/link";
import { useCallback, useEffect, useRef, useState } from "react";
import { errorText } from "@/lib/errors";
import { browserApi } from "@/lib/browser-api";
import { fmtClock, fmtDuration, fmtScore, fmtValue, kindLabel } from "@/lib/format";
import { InjectResultSchema, pickService, SimHealthSchema, type SimHealth } from "@/lib/sim";
import type { Incident, Suspect } from "@/lib/types";
import EvidenceBars from "./EvidenceBars";
import Sparkline from "./Sparkline";
import StatusBadge from "./StatusBadge";

const POLL_MS = 2000;
const SPARK_WINDOW_S = 600;
const METRIC = "p95_latency_ms";

type Action = { name: string; path: string; params: Record<string, string>; label: string };

const ACTIONS: Action[] = [
  { name: "deploy", path: "deploy", params: { bad: "true" }, label: "Roll out a faulty deployment" },
  { name: "config", path: "config-change", params: { bad: "true" }, label: "Push a bad config change" },
  { name: "latency", path: "inject-latency", params: { ms: "400", duration: "600" }, label: "Inject latency (+400 ms)" },
  { name: "errors", path: "inject-errors", params: { rate: "0.1", duration: "600" }, label: "Inject errors (+10%)" },
];

type Injection = { at: number; label: string; service: string; changeId: string | null; known: Set<string> };

export default function DemoClient({ simUrl }: { simUrl: string }) {
  const [sim, setSim] = useState<SimHealth | null>(null);
  const [simError, setSimError] = useState<string | null>(null);
  const [incidents, setIncidents] = useState<Incident[] | null>(null);
  const [apiError, setApiError] = useState<string | null>(null);
  const [series, setSeries] = useState<Record<string, number[]>>({});
  const [service, setService] = useState<string>("");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [injection, setInjection] = useState<Injection | null>(null);
  const [suspects, setSuspects] = useState<{ incident: string; list: Suspect[] } | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const incidentsRef = useRef<Incident[]>([]);

  const poll = useCallback(async () => {
    setNow(Date.now());
    try {
      const r = await fetch("/api/sim/health", { cache: "no-store" });
      const body: unknown = await r.json();
      if (!r.ok) throw new Error(errorText(body));
      const h = SimHealthSchema.parse(body);
      setSim(h);
      setSimError(null);
      setService((s) => s || pickService(h) || "");
      const api = browserApi();
      const since = String(Date.now() / 1000 - SPARK_WINDOW_S);
      const got = await Promise.all(
        h.services.map(async (svc) => {
          const { data } = await api.GET("/services/{service}/metrics/{metric}/series", {
            params: { path: { service: svc, metric: METRIC }, query: { since, step: h.interval } },
          });
          return [svc, (data?.points ?? []).map((p) => p.value)] as const;
        }),
      );
      setSeries(Object.fromEntries(got));
    } catch (e) {
      setSimError(e instanceof Error ? e.message : String(e));
    }
    try {
      const { data, error } = await browserApi().GET("/incidents", { params: { query: { limit: 50 } } });
      if (data) {
        incidentsRef.current = data;
        setIncidents(data);
        setApiError(null);
      } else setApiError(errorText(error));
    } catch (e) {
      setApiError(e instanceof Error ? e.message : String(e));
    }
  }, []);

  useEffect(() => {
    void poll();
    const id = window.setInterval(() => void poll(), POLL_MS);
    return () => window.clearInterval(id);
  }, [poll]);

  const fresh = injection && incidents ? incidents.filter((i) => !injection.known.has(i.id)) : [];
  const newest = fresh.length ? fresh[fresh.length - 1] : undefined; // the first to appear (newest first list)
  const newestId = newest?.id;
  const newestTop = newest?.top_suspect?.id;
  const [detectedAfter, setDetectedAfter] = useState<number | null>(null);

  useEffect(() => {
    if (injection && newestId && detectedAfter === null) setDetectedAfter((Date.now() - injection.at) / 1000);
  }, [injection, newestId, detectedAfter]);

  useEffect(() => {
    if (!newestId) return;
    let gone = false;
    void (async () => {
      const { data } = await browserApi().GET("/incidents/{incident_id}/suspects", {
        params: { path: { incident_id: newestId } },
      });
      if (!gone && data) setSuspects({ incident: newestId, list: data });
    })();
    return () => {
      gone = true;
    };
  }, [newestId, newestTop, now]);

  async function run(action: Action | "reset" | "rollback") {
    if (!service && action !== "reset") return;
    setBusy(true);
    setMessage(null);
    const path = action === "reset" ? "reset" : action === "rollback" ? "rollback" : action.path;
    const params = new URLSearchParams(
      action === "reset" ? {} : { service, ...(typeof action === "string" ? {} : action.params) },
    );
    try {
      const r = await fetch(`/api/sim/${path}?${params}`, { method: "POST" });
      const body: unknown = await r.json();
      if (!r.ok) {
        setMessage(`The simulator refused: ${errorText(body)}`);
        return;
      }
      const res = InjectResultSchema.parse(body);
      if (action === "reset") {
        setMessage(`Cleared ${res.cleared ?? 0} active faults.`);
        setInjection(null);
        setSuspects(null);
        return;
      }
      if (action === "rollback") {
        setMessage(`Rolled back ${service} (${res.change?.id ?? "change"}); its fault ends shortly.`);
        return;
      }
      const change = res.deployment ?? res.config_change ?? res.flag_change;
      const known = new Set(incidentsRef.current.map((i) => i.id));
      setInjection({ at: Date.now(), label: action.label, service, changeId: change?.id ?? null, known });
      setDetectedAfter(null);
      setSuspects(null);
      setMessage(
        `${action.label} on ${service}${change ? ` (${change.id})` : ""} at ${fmtClock(Date.now() / 1000)} UTC; ` +
          "waiting for the server to detect it…",
      );
    } catch (e) {
      setMessage(`Could not reach the simulator: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setBusy(false);
    }
  }

  const faulty = new Set((sim?.faults ?? []).map((f) => f.service));
  const open = (incidents ?? []).filter((i) => i.status === "OPEN");

  return (
    <div className="demo">
      {simError ? (
        <div role="alert" className="panel error">
          <h2>Simulator not reachable</h2>
          <p>{simError}</p>
          <p>
            Start one with <code>rca demo</code> (it runs the simulator too) or{" "}
            <code>rca sim --server http://127.0.0.1:8000</code>, and point the web app at its controls with{" "}
            <code>rca web --sim-url {simUrl}</code>.
          </p>
        </div>
      ) : null}

      <section aria-labelledby="controls-h" className="panel controls">
        <h2 id="controls-h">Break something</h2>
        <div className="control-row">
          <label>
            Service
            <select value={service} onChange={(e) => setService(e.target.value)} disabled={!sim}>
              {(sim?.services ?? []).map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          {ACTIONS.map((a) => (
            <button key={a.name} type="button" onClick={() => run(a)} disabled={busy || !sim} data-action={a.name}>
              {a.label}
            </button>
          ))}
          <button type="button" className="secondary" onClick={() => run("rollback")} disabled={busy || !sim}>
            Roll back
          </button>
          <button type="button" className="secondary" onClick={() => run("reset")} disabled={busy || !sim}>
            Reset faults
          </button>
        </div>
        <p aria-live="polite" data-testid="demo-message" className="message">
          {message && newest && message.endsWith("detect it…") ? message.replace("waiting for the server to detect it…", "detected.") : message}
        </p>
      </section>

      {injection ? (
        <section aria-labelledby="result-h" className="panel result" data-testid="demo-result">
          <h2 id="result-h">
            {newest
              ? `Incident detected${detectedAfter !== null ? ` ${fmtDuration(detectedAfter)} after the ${injection.changeId ? "change" : "fault"}` : ""}`
              : `Waiting for detection (${fmtDuration((now - injection.at) / 1000)})`}
          </h2>
          {newest ? (
            <>
              <p data-testid="demo-incident">
                <StatusBadge status={newest.status} />{" "}
                <Link href={`/incidents/${encodeURIComponent(newest.id)}`}>{newest.title}</Link>{" "}
                <span className="mono">{newest.id}</span>, onset {newest.started_at.slice(11, 19)} UTC, on{" "}
                {newest.services.join(", ")}
              </p>
              {suspects && suspects.incident === newest.id && suspects.list.length ? (
                <ol className="suspects compact" data-testid="demo-suspects">
                  {suspects.list.slice(0, 3).map((s) => (
                    <li key={s.id} className="suspect" data-testid="suspect" data-change={s.change_id ?? ""}>
                      <div className="suspect-head">
                        <span className="rank">#{s.rank}</span>
                        <span className={`badge kind-${s.kind}`}>{kindLabel(s.kind)}</span>
                        <span className="mono">{s.change_id ?? s.service}</span>
                        <span>score {fmtScore(s.score)}</span>
                        {injection.changeId && s.change_id === injection.changeId ? (
                          <span className="badge status-resolved">the injected change</span>
                        ) : null}
                      </div>
                      <p className="explanation">{s.explanation}</p>
                      <EvidenceBars evidence={s.evidence} />
                    </li>
                  ))}
                </ol>
              ) : (
                <p className="muted">Ranking the suspects…</p>
              )}
            </>
          ) : (
            <p className="muted">
              {injection.label} on {injection.service}. The detector needs a few reports from the fleet (one every{" "}
              {sim?.interval ?? "?"}s) to see the change.
            </p>
          )}
        </section>
      ) : null}

      <section aria-labelledby="fleet-h">
        <h2 id="fleet-h">The fleet ({METRIC}, last {SPARK_WINDOW_S / 60} minutes)</h2>
        {sim ? (
          <p className="muted">
            {sim.services.length} services, report every {sim.interval}s, {sim.ticks} reports sent
            {sim.errors ? `, ${sim.errors} delivery errors (${sim.last_error ?? ""})` : ""}
          </p>
        ) : null}
        <ul className="fleet" data-testid="fleet">
          {(sim?.services ?? []).map((svc) => {
            const vals = series[svc] ?? [];
            const last = vals[vals.length - 1];
            return (
              <li key={svc} className={faulty.has(svc) ? "svc faulty" : "svc"} data-testid="fleet-service">
                <div className="svc-head">
                  <Link href={`/services/${encodeURIComponent(svc)}`}>{svc}</Link>
                  {faulty.has(svc) ? <span className="badge status-open">fault</span> : null}
                </div>
                <Sparkline values={vals} />
                <div className="muted">{last !== undefined ? `${fmtValue(last)} ms` : "no data yet"}</div>
              </li>
            );
          })}
        </ul>
      </section>

      <section aria-labelledby="open-h">
        <h2 id="open-h">Open incidents</h2>
        {apiError ? (
          <p role="alert" className="panel error">
            RCA server: {apiError}
          </p>
        ) : null}
        {open.length === 0 ? (
          <p className="muted">None.</p>
        ) : (
          <ul className="open-list">
            {open.slice(0, 10).map((i) => (
              <li key={i.id}>
                <Link href={`/incidents/${encodeURIComponent(i.id)}`}>{i.title}</Link>{" "}
                <span className="muted">
                  {i.id}
                  {i.top_suspect ? ` · top suspect ${i.top_suspect.change_id ?? i.top_suspect.id}` : ""}
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}
