/**
 * The simulator's control API (`rca sim`, server/sim/live.py) is not part of the RCA
 * server's OpenAPI contract, so its answers are checked with zod at the edge.
 */
import { z } from "zod";

export const FaultSchema = z.object({
  id: z.string(),
  service: z.string(),
  kind: z.string(),
  origin: z.string(),
  change_id: z.string().nullable(),
  start: z.number(),
  end: z.number().nullable(),
  latency_factor: z.number(),
  error_add: z.number(),
});
export type Fault = z.infer<typeof FaultSchema>;

export const SimHealthSchema = z.object({
  status: z.string(),
  server: z.string().nullable(),
  interval: z.number(),
  services: z.array(z.string()),
  edges: z.array(z.object({ source: z.string(), target: z.string() })),
  faults: z.array(FaultSchema),
  ticks: z.number(),
  sent: z.record(z.number()),
  errors: z.number(),
  last_error: z.string().nullable(),
});
export type SimHealth = z.infer<typeof SimHealthSchema>;

/** The answer of every fault-starting control: the change it posted (if any) and the fault. */
export const InjectResultSchema = z
  .object({
    fault: FaultSchema.nullable().optional(),
    deployment: z.object({ id: z.string(), service: z.string(), version: z.string().optional() }).passthrough().optional(),
    config_change: z.object({ id: z.string() }).passthrough().optional(),
    flag_change: z.object({ id: z.string() }).passthrough().optional(),
    change: z.object({ id: z.string() }).passthrough().optional(),
    cleared: z.number().optional(),
  })
  .passthrough();
export type InjectResult = z.infer<typeof InjectResultSchema>;

/** The controls the web app forwards to the simulator (everything else is refused). */
export const SIM_ACTIONS = {
  health: "GET",
  "inject-latency": "POST",
  "inject-errors": "POST",
  deploy: "POST",
  "config-change": "POST",
  "flag-change": "POST",
  rollback: "POST",
  reset: "POST",
  tick: "POST",
} as const;
export type SimAction = keyof typeof SIM_ACTIONS;

export function isSimAction(s: string): s is SimAction {
  return Object.prototype.hasOwnProperty.call(SIM_ACTIONS, s);
}

/** The status filter of the incident list, from the URL. */
export const StatusParam = z.enum(["OPEN", "RESOLVED"]).optional().catch(undefined);

/** A service with callers, so a fault there visibly propagates upstream (as `rca demo` picks). */
export function pickService(h: SimHealth): string | undefined {
  const callers = new Map<string, number>();
  for (const e of h.edges) callers.set(e.target, (callers.get(e.target) ?? 0) + 1);
  const ranked = h.services
    .filter((s) => (callers.get(s) ?? 0) > 0)
    .sort((a, b) => (callers.get(b) ?? 0) - (callers.get(a) ?? 0) || a.localeCompare(b));
  return ranked[0] ?? h.services[0];
}
