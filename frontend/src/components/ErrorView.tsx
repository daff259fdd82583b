"use client";

import { useEffect } from "react";

/** The body of every route's error.tsx: what failed, and a retry that keeps the page. */
export default function ErrorView({
  error,
  reset,
  what,
}: {
  error: Error & { digest?: string };
  reset: () => void;
  what: string;
}) {
  useEffect(() => {
    console.error(error);
  }, [error]);
  return (
    <section role="alert" className="panel error">
      <h1>Could not load {what}</h1>
      <p>
        The RCA server did not answer as expected: it may be down, restarting or unreachable from the web app
        (its address is the <code>RCA_API_URL</code> setting, shown at the bottom of the page).
      </p>
      {error.digest ? (
        <p className="muted">
          Reference <code>{error.digest}</code> (details in the web server&apos;s log).
        </p>
      ) : null}
      <button type="button" onClick={() => reset()}>
        Try again
      </button>
    </section>
  );
}
