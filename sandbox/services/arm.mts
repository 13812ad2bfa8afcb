// Emulated Azure Resource Manager: the REST paths and api-versions of azure-facts.md §5.
import type { ServiceDef } from "../core/http.mts";
import type { SandboxContext } from "../main.mts";

export function createArmService(ctx: SandboxContext): ServiceDef {
  void ctx;
  return {
    name: "arm",
    caseInsensitive: true,
    routes: [],
    notFound: () => ({ status: 404, body: { error: { code: "InvalidResourceType", message: "Unknown route." } } }),
  };
}
