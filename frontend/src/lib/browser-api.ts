"use client";
/**
 * The same typed client for client components: it calls this app's proxy under /api/rca
 * (a route handler that forwards to RCA_API_URL), so the browser needs no CORS.
 */
import createClient from "openapi-fetch";
import type { paths } from "./api-types";

export function browserApi() {
  return createClient<paths>({ baseUrl: `${window.location.origin}/api/rca`, cache: "no-store" });
}
