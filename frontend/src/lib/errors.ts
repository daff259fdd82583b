import type { ErrorBody } from "./types";

/** The message of an error body of the contract (`{"detail": ...}`), for people. */
export function errorText(error: ErrorBody | unknown): string {
  if (error && typeof error === "object" && "detail" in error) {
    const d = (error as ErrorBody).detail;
    if (typeof d === "string") return d;
    return d.map((e) => `${e.loc.join(".")}: ${e.msg}`).join("; ");
  }
  return String(error);
}
