/**
 * Same-origin proxy to the RCA server for client components (label, rerun, the demo's
 * polling): the browser calls /api/rca/<path>, this handler calls RCA_API_URL/<path>.
 */
import { apiHeaders, apiUrl } from "@/lib/config";
import { forward } from "@/lib/proxy";

export const dynamic = "force-dynamic";

type Ctx = { params: { path: string[] } };

export async function GET(req: Request, { params }: Ctx): Promise<Response> {
  return forward(req, apiUrl(), params.path, "RCA server", apiHeaders());
}

export async function POST(req: Request, { params }: Ctx): Promise<Response> {
  return forward(req, apiUrl(), params.path, "RCA server", apiHeaders());
}
