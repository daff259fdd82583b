import Link from "next/link";

export default function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is nothing at this address. Back to the <Link href="/incidents">incidents</Link>.
      </p>
    </section>
  );
}
