/** Forwarding of browser requests to the RCA server or the simulator (route handlers). */

export async function forward(
  req: Request,
  base: string,
  path: string[],
  what: string,
  auth: Record<string, string> = {},
): Promise<Response> {
  const search = new URL(req.url).search;
  const target = `${base}/${path.map(encodeURIComponent).join("/")}${search}`;
  const headers: Record<string, string> = { ...auth };
  const ct = req.headers.get("content-type");
  if (ct) headers["content-type"] = ct;
  const init: RequestInit = { method: req.method, cache: "no-store", headers };
  if (req.method !== "GET" && req.method !== "HEAD") {
    const body = await req.arrayBuffer();
    if (body.byteLength > 0) init.body = body;
  }
  let res: Response;
  try {
    res = await fetch(target, init);
  } catch (e) {
    const why = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
    return Response.json({ detail: `cannot reach the ${what} at ${base}: ${why}` }, { status: 502 });
  }
  const out = new Headers({ "cache-control": "no-store" });
  const rct = res.headers.get("content-type");
  if (rct) out.set("content-type", rct);
  return new Response(await res.arrayBuffer(), { status: res.status, headers: out });
}
