import type { Metadata } from "next";
import Link from "next/link";
import type { ReactNode } from "react";
import { apiUrl } from "@/lib/config";
import "./globals.css";

// Every page reads the server URL at run time (RCA_API_URL), so nothing is prerendered at build.
export const dynamic = "force-dynamic";

export const metadata: Metadata = {
  title: { default: "RCA workbench", template: "%s · RCA workbench" },
  description: "Incidents, their ranked suspect changes and the evidence for each",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <a className="skip" href="#main">
          Skip to content
        </a>
        <header className="top">
          <Link href="/incidents" className="brand">
            RCA workbench
          </Link>
          <nav aria-label="Main">
            <ul>
              <li>
                <Link href="/incidents">Incidents</Link>
              </li>
              <li>
                <Link href="/demo">Live demo</Link>
              </li>
              <li>
                <Link href="/services">Services</Link>
              </li>
              <li>
                <Link href="/changes">Change log</Link>
              </li>
            </ul>
          </nav>
        </header>
        <main id="main">{children}</main>
        <footer className="foot">
          <span>
            Server: <code>{apiUrl()}</code>
          </span>
        </footer>
      </body>
    </html>
  );
}
