/** The body of every route's loading.tsx. */
export default function Loading({ what }: { what: string }) {
  return (
    <section aria-busy="true" aria-live="polite" className="loading">
      <p>Loading {what}…</p>
      <div className="skeleton" />
      <div className="skeleton short" />
    </section>
  );
}
