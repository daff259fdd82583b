import { fmtClock, fmtValue } from "@/lib/format";

export type ChartPoint = { t: number; v: number };
export type ChartMarker = { t: number; label: string; kind: "onset" | "change" };

const W = 640;
const H = 190;
const PAD = { l: 58, r: 12, t: 22, b: 26 };

/**
 * One metric series as an SVG line chart (rendered on the server, no chart library):
 * the onset as a red dashed line, each suspect change as a numbered marker, the
 * detector's baseline as a dotted line.
 */
export default function SeriesChart({
  title,
  points,
  markers,
  baseline,
  from,
  to,
}: {
  title: string;
  points: ChartPoint[];
  markers: ChartMarker[];
  baseline?: number | null;
  from: number;
  to: number;
}) {
  const span = Math.max(to - from, 1);
  const vals = points.map((p) => p.v);
  if (baseline !== null && baseline !== undefined && Number.isFinite(baseline)) vals.push(baseline);
  let lo = vals.length ? Math.min(...vals) : 0;
  let hi = vals.length ? Math.max(...vals) : 1;
  if (hi - lo < 1e-9) {
    hi += Math.abs(hi) * 0.1 + 1e-3;
    lo -= Math.abs(lo) * 0.1 + 1e-3;
  }
  const pad = (hi - lo) * 0.06;
  lo -= pad;
  hi += pad;
  const x = (t: number) => PAD.l + ((t - from) / span) * (W - PAD.l - PAD.r);
  const y = (v: number) => PAD.t + (1 - (v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  const inRange = points.filter((p) => p.t >= from && p.t <= to);
  const d = inRange.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
  const shown = markers.filter((m) => m.t >= from && m.t <= to);
  const summary =
    `${title}: ${inRange.length} points from ${fmtClock(from)} to ${fmtClock(to)} UTC, ` +
    `between ${fmtValue(Math.min(...(inRange.length ? inRange.map((p) => p.v) : [0])))} and ` +
    `${fmtValue(Math.max(...(inRange.length ? inRange.map((p) => p.v) : [0])))}` +
    shown.map((m) => `; ${m.label} at ${fmtClock(m.t)}`).join("");

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary} preserveAspectRatio="none">
        <rect x={PAD.l} y={PAD.t} width={W - PAD.l - PAD.r} height={H - PAD.t - PAD.b} className="plot" />
        <text x={PAD.l - 6} y={PAD.t + 4} className="axis" textAnchor="end">
          {fmtValue(hi)}
        </text>
        <text x={PAD.l - 6} y={H - PAD.b} className="axis" textAnchor="end">
          {fmtValue(lo)}
        </text>
        <text x={PAD.l} y={H - 8} className="axis">
          {fmtClock(from)}
        </text>
        <text x={W - PAD.r} y={H - 8} className="axis" textAnchor="end">
          {fmtClock(to)} UTC
        </text>
        {baseline !== null && baseline !== undefined && Number.isFinite(baseline) ? (
          <line x1={PAD.l} x2={W - PAD.r} y1={y(baseline)} y2={y(baseline)} className="baseline" />
        ) : null}
        {d ? <path d={d} className="line" /> : null}
        {shown.map((m, i) => (
          <g key={`${m.kind}-${i}`} className={`marker ${m.kind}`}>
            <line x1={x(m.t)} x2={x(m.t)} y1={PAD.t} y2={H - PAD.b} />
            <text x={x(m.t) + 3} y={m.kind === "onset" ? PAD.t - 6 : PAD.t + 12 + (i % 3) * 12}>
              {m.label}
            </text>
          </g>
        ))}
        {inRange.length === 0 ? (
          <text x={W / 2} y={H / 2} className="axis" textAnchor="middle">
            no points stored in this window
          </text>
        ) : null}
      </svg>
    </figure>
  );
}
