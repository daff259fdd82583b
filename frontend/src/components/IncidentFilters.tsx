"use client";

import { usePathname, useRouter, useSearchParams } from "next/navigation";

/**
 * Status and service filters. They live in the URL (a filtered list is a link too);
 * with JavaScript a change applies at once, without it the Apply button submits.
 */
export default function IncidentFilters({ services }: { services: string[] }) {
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();

  function set(name: string, value: string) {
    const next = new URLSearchParams(params.toString());
    if (value) next.set(name, value);
    else next.delete(name);
    const q = next.toString();
    router.replace(q ? `${pathname}?${q}` : pathname);
  }

  return (
    <form className="filters" method="get" action={pathname} onSubmit={(e) => e.preventDefault()}>
      <label>
        Status
        <select name="status" value={params.get("status") ?? ""} onChange={(e) => set("status", e.target.value)}>
          <option value="">all</option>
          <option value="OPEN">open</option>
          <option value="RESOLVED">resolved</option>
        </select>
      </label>
      <label>
        Service
        <select name="service" value={params.get("service") ?? ""} onChange={(e) => set("service", e.target.value)}>
          <option value="">all</option>
          {services.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <noscript>
        <button type="submit">Apply</button>
      </noscript>
    </form>
  );
}
