"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { errorText } from "@/lib/errors";
import { browserApi } from "@/lib/browser-api";
import type { Label } from "@/lib/types";

/** "Cause" / "Not the cause" for one change suspect; the label is stored on the server. */
export default function LabelButtons({
  incidentId,
  suspectId,
  changeId,
  existing,
}: {
  incidentId: string;
  suspectId: string;
  changeId: string;
  existing: Label | null;
}) {
  const router = useRouter();
  const [busy, setBusy] = useState(false);
  const [label, setLabel] = useState<Label | null>(existing);
  const [error, setError] = useState<string | null>(null);
  const current = existing && (!label || existing.created_at > label.created_at) ? existing : label;

  async function send(verdict: "cause" | "not_cause") {
    setBusy(true);
    setError(null);
    try {
      const { data, error: err } = await browserApi().POST("/incidents/{incident_id}/label", {
        params: { path: { incident_id: incidentId } },
        body: { change_id: changeId, suspect_id: suspectId, verdict, author: "web" },
      });
      if (data) {
        setLabel(data);
        router.refresh();
      } else setError(errorText(err));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="label-buttons" role="group" aria-label={`Label ${changeId}`}>
      <button type="button" onClick={() => send("cause")} disabled={busy} aria-pressed={current?.verdict === "cause"}>
        Cause
      </button>
      <button
        type="button"
        className="secondary"
        onClick={() => send("not_cause")}
        disabled={busy}
        aria-pressed={current?.verdict === "not_cause"}
      >
        Not the cause
      </button>
      <span aria-live="polite" className="label-state" data-testid="label-state">
        {error ? (
          <span className="err">Label not stored: {error}</span>
        ) : current ? (
          <>
            Labelled <strong>{current.verdict === "cause" ? "cause" : "not the cause"}</strong>
            {current.author ? ` by ${current.author}` : ""}
          </>
        ) : null}
      </span>
    </div>
  );
}
