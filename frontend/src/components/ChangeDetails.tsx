import type { Change } from "@/lib/types";

/** What a change did: version and diff, config old → new, flag state and rollout. */
export default function ChangeDetails({ change }: { change: Change }) {
  if (change.kind === "deployment") {
    const files = change.diff?.files ?? [];
    return (
      <div className="change-details">
        <span>
          {change.previous_version ? `${change.previous_version} → ` : ""}
          <strong>{change.version}</strong>
          {change.commit ? <span className="mono"> ({change.commit})</span> : null}
        </span>
        {files.length ? (
          <ul className="files">
            {files.slice(0, 6).map((f) => (
              <li key={f.path}>
                <span className="mono">{f.path}</span> <span className="add">+{f.added}</span>{" "}
                <span className="del">−{f.removed}</span>
              </li>
            ))}
            {files.length > 6 ? <li className="muted">and {files.length - 6} more files</li> : null}
          </ul>
        ) : null}
      </div>
    );
  }
  if (change.kind === "config_change") {
    return (
      <div className="change-details">
        <span className="mono">{change.key}</span>: <span className="mono">{change.old_value ?? "–"}</span> →{" "}
        <strong className="mono">{change.new_value ?? "–"}</strong>
      </div>
    );
  }
  return (
    <div className="change-details">
      flag <span className="mono">{change.flag}</span>: {change.old_state ?? "–"} → <strong>{change.new_state ?? "–"}</strong>
      {change.rollout_percent !== null && change.rollout_percent !== undefined
        ? ` (${change.rollout_percent}% rollout)`
        : ""}
    </div>
  );
}
