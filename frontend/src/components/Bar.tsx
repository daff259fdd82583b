/** A value in [0, 1] as a horizontal bar with its number (the number is what is read out). */
export default function Bar({ value, label, tone = "ev" }: { value: number; label: string; tone?: "ev" | "score" | "sev" }) {
  const v = Math.max(0, Math.min(1, Number.isFinite(value) ? value : 0));
  return (
    <div className={`bar-row ${tone}`}>
      <span className="bar-label">{label}</span>
      <span className="bar" aria-hidden="true">
        <span className="fill" style={{ width: `${(v * 100).toFixed(1)}%` }} />
      </span>
      <span className="bar-value">{value.toFixed(2)}</span>
    </div>
  );
}
