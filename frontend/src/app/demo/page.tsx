import type { Metadata } from "next";
import DemoClient from "@/components/DemoClient";
import { simUrl } from "@/lib/config";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Live demo" };

export default function DemoPage() {
  return (
    <section>
      <h1>Live demo</h1>
      <p className="muted">
        The simulated fleet (<code>rca sim</code> or <code>rca demo</code>, controls at <code>{simUrl()}</code>) reports
        to the RCA server every few seconds. Pick a service and break it: the incident and its ranked suspects appear
        here as soon as the server detects it.
      </p>
      <DemoClient simUrl={simUrl()} />
    </section>
  );
}
