import { signalLabel } from "@/lib/format";
import Bar from "./Bar";

/** Every evidence signal of a suspect, strongest first. */
export default function EvidenceBars({ evidence }: { evidence: Record<string, number> }) {
  const rows = Object.entries(evidence).sort((a, b) => b[1] - a[1]);
  if (rows.length === 0) return <p className="muted">No evidence recorded.</p>;
  return (
    <div className="evidence" data-testid="evidence">
      {rows.map(([k, v]) => (
        <Bar key={k} label={signalLabel(k)} value={v} />
      ))}
    </div>
  );
}
