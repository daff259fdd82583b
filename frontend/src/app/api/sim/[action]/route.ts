/**
 * The demo page's access to the simulator's controls (`rca sim`, RCA_SIM_URL): the
 * browser calls /api/sim/<action>, this handler calls the simulator server-side, so the
 * simulator needs neither CORS nor a public address. Only the known controls pass.
 */
import { simUrl } from "@/lib/config";
import { forward } from "@/lib/proxy";
import { isSimAction, SIM_ACTIONS } from "@/lib/sim";

export const dynamic = "force-dynamic";

type Ctx = { params: { action: string } };

function handle(method: "GET" | "POST") {
  return async (req: Request, { params }: Ctx): Promise<Response> => {
    const { action } = params;
    if (!isSimAction(action)) {
      return Response.json(
        { detail: `unknown simulator control ${JSON.stringify(action)}; known: ${Object.keys(SIM_ACTIONS).join(", ")}` },
        { status: 404 },
      );
    }
    if (SIM_ACTIONS[action] !== method) {
      return Response.json({ detail: `use ${SIM_ACTIONS[action]} for ${action}` }, { status: 405 });
    }
    return forward(req, simUrl(), [action], "simulator");
  };
}

export const GET = handle("GET");
export const POST = handle("POST");
