import Link from "next/link";

export default function IncidentNotFound() {
  return (
    <section>
      <h1>Incident not found</h1>
      <p>
        The server knows no incident with this id (a wiped demo data dir forgets them). See the{" "}
        <Link href="/incidents">incident list</Link>.
      </p>
    </section>
  );
}
