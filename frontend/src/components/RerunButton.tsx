"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { errorText } from "@/lib/errors";
import { browserApi } from "@/lib/browser-api";

/** Asks the server to recompute the suspects (they reflect every label so far). */
export default function RerunButton({ incidentId }: { incidentId: string }) {
  const router = useRouter();
  const [state, setState] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function rerun() {
    setBusy(true);
    setState(null);
    try {
      const { data, error } = await browserApi().POST("/incidents/{incident_id}/rerun_rca", {
        params: { path: { incident_id: incidentId } },
      });
      if (data) {
        setState("RCA rerun requested; the suspects update in a moment.");
        window.setTimeout(() => router.refresh(), 1500);
      } else setState(`Rerun refused: ${errorText(error)}`);
    } catch (e) {
      setState(`Rerun failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <span className="rerun">
      <button type="button" onClick={rerun} disabled={busy}>
        Rerun RCA
      </button>
      <span aria-live="polite" className="muted">
        {state}
      </span>
    </span>
  );
}
