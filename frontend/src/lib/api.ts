/**
 * The typed client of the RCA server, used by server components. Paths, parameters and
 * response bodies come from `api-types.ts`, generated from the server's /openapi.json,
 * so a contract change breaks `tsc` and `next build` rather than a page.
 */
import createClient from "openapi-fetch";
import type { paths } from "./api-types";
import { apiHeaders, apiUrl } from "./config";
import { errorText } from "./errors";

export { errorText };

export type RcaClient = ReturnType<typeof createClient<paths>>;

export function serverApi(): RcaClient {
  return createClient<paths>({ baseUrl: apiUrl(), cache: "no-store", headers: apiHeaders() });
}

/** The server answered with an error status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The server could not be reached at all (refused, timed out, DNS). */
export class ApiUnreachable extends Error {
  constructor(readonly url: string, cause: unknown) {
    super(`cannot reach the RCA server at ${url}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "ApiUnreachable";
  }
}

type Result<T> = { data?: T; error?: unknown; response: Response };

/** The body of a successful call; throws ApiError / ApiUnreachable otherwise. */
export async function unwrap<T>(call: Promise<Result<T>>, what: string): Promise<T> {
  let res: Result<T>;
  try {
    res = await call;
  } catch (e) {
    throw new ApiUnreachable(apiUrl(), e);
  }
  if (res.data === undefined || !res.response.ok) {
    throw new ApiError(res.response.status, `${what}: ${res.response.status} ${errorText(res.error)}`);
  }
  return res.data;
}
