/**
 * The one place the web app learns where the RCA server (and the simulator of the demo)
 * live. Both are read at run time on the Next.js server, so one build serves any server:
 *
 *   RCA_API_URL=http://rca.internal:8000 RCA_SIM_URL=http://127.0.0.1:8001 next start
 *
 * The browser never calls them directly: it goes through this app's route handlers
 * under /api/rca and /api/sim (same origin, no CORS needed).
 */

function clean(url: string): string {
  return url.trim().replace(/\/+$/, "");
}

export function apiUrl(): string {
  return clean(process.env.RCA_API_URL ?? "http://127.0.0.1:8000");
}

/** Headers that authenticate the web app to the RCA server: RCA_API_KEY (a key with the
 * label role lets users label and rerun; read is enough for viewing), none when unset. */
export function apiHeaders(): Record<string, string> {
  const key = (process.env.RCA_API_KEY ?? "").trim();
  return key ? { authorization: `Bearer ${key}` } : {};
}

export function simUrl(): string {
  return clean(process.env.RCA_SIM_URL ?? "http://127.0.0.1:8001");
}

/** Seconds between automatic refreshes of live pages. */
export function refreshSeconds(): number {
  const v = Number(process.env.RCA_WEB_REFRESH_SECONDS ?? "3");
  return Number.isFinite(v) && v > 0 ? v : 3;
}
