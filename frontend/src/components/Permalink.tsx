"use client";

import { useState } from "react";

/** The incident's permanent address, with a copy button (for pasting into chat). */
export default function Permalink({ path }: { path: string }) {
  const [copied, setCopied] = useState(false);
  async function copy() {
    const url = `${window.location.origin}${path}`;
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
      window.setTimeout(() => setCopied(false), 2000);
    } catch {
      window.prompt("Copy this link", url);
    }
  }
  return (
    <span className="permalink">
      <a href={path} rel="bookmark">
        Permalink
      </a>
      <button type="button" className="small secondary" onClick={copy}>
        {copied ? "Copied" : "Copy link"}
      </button>
    </span>
  );
}
