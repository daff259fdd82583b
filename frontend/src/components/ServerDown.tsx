import AutoRefresh from "./AutoRefresh";

/** Shown in place of data when the RCA server cannot be reached; retries by itself. */
export default function ServerDown({ message, refreshSeconds }: { message: string; refreshSeconds: number }) {
  return (
    <section role="alert" className="panel error">
      <h2>RCA server unreachable</h2>
      <p>{message}</p>
      <p>This page retries by itself.</p>
      <AutoRefresh seconds={refreshSeconds} />
    </section>
  );
}
