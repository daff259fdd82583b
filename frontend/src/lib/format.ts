/** Formatting shared by the pages (pure). */

export function parseTs(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t / 1000;
}

/** "2026-11-30 04:00:20 UTC" */
export function fmtTime(iso: string | null | undefined): string {
  const t = parseTs(iso);
  if (t === null) return "–";
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
}

/** "04:00:20" (UTC) */
export function fmtClock(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().slice(11, 19);
}

/** "2m20s", "3h05m", "12s" */
export function fmtDuration(seconds: number): string {
  const s = Math.round(Math.abs(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}

/** Where a change lies relative to the onset: "2m20s before onset". */
export function relativeToOnset(changeIso: string | null | undefined, onsetIso: string): string {
  const c = parseTs(changeIso);
  const o = parseTs(onsetIso);
  if (c === null || o === null) return "";
  const d = o - c;
  if (Math.abs(d) < 1) return "at onset";
  return `${fmtDuration(d)} ${d > 0 ? "before" : "after"} onset`;
}

export function fmtScore(v: number): string {
  return v.toFixed(2);
}

export function fmtValue(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.1) return v.toFixed(2);
  return v.toPrecision(2);
}

export function kindLabel(kind: string): string {
  return (
    { deployment: "deployment", config_change: "config change", flag_change: "flag change", service: "service" }[
      kind
    ] ?? kind
  );
}

export function signalLabel(signal: string): string {
  return signal.replace(/_/g, " ");
}
