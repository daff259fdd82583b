"use client";

import { useRouter } from "next/navigation";
import { useEffect, useState, useTransition } from "react";
import { fmtClock } from "@/lib/format";

/**
 * Live refresh without a reload: re-renders the page's server components every
 * `seconds` (router.refresh keeps client state, scroll position and focus).
 */
export default function AutoRefresh({ seconds }: { seconds: number }) {
  const router = useRouter();
  const [paused, setPaused] = useState(false);
  const [updated, setUpdated] = useState<number | null>(null);
  const [pending, startTransition] = useTransition();

  useEffect(() => {
    setUpdated(Date.now() / 1000);
    if (paused) return;
    const id = window.setInterval(() => {
      if (document.visibilityState === "hidden") return;
      startTransition(() => {
        router.refresh();
        setUpdated(Date.now() / 1000);
      });
    }, seconds * 1000);
    return () => window.clearInterval(id);
  }, [paused, router, seconds]);

  return (
    <div className="live" data-testid="live">
      <span className={paused ? "dot off" : "dot"} aria-hidden="true" />
      <span>
        {paused ? "Paused" : `Live, every ${seconds}s`}
        {updated !== null ? ` · updated ${fmtClock(updated)} UTC` : ""}
        {pending ? " · refreshing" : ""}
      </span>
      <button type="button" className="small" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
        {paused ? "Resume" : "Pause"}
      </button>
    </div>
  );
}
