// Emulated Microsoft Entra ID: tenant OIDC metadata, v1/v2 token endpoints, client-assertion
// (workload identity federation) validation as azure-facts.md §2 describes.
import type { ServiceDef } from "../core/http.mts";
import type { SandboxContext } from "../main.mts";

export function createEntraService(ctx: SandboxContext): ServiceDef {
  void ctx;
  return {
    name: "entra",
    routes: [],
    notFound: () => ({ status: 404, body: { error: "not_found", error_description: "Unknown route." } }),
  };
}
