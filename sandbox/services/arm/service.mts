// Emulated Azure Resource Manager: the REST paths and api-versions of docs/azure-behaviour.md §5, one
// module per resource provider (arm/*.mts), case-insensitive paths. Every request is
// authenticated (401 in ARM's words), needs an api-version the resource type has, and is
// authorized with RBAC (403 AuthorizationFailed). A path or method no provider serves gets the
// error ARM gives for it (unknown namespace, unknown type, missing subscription or resource
// group, unsupported method), never a silent 200.
import { createInProcessDispatcher, type Reply, type RouteContext, type ServiceDef } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";
import { API_VERSIONS, NAMESPACES } from "./api-versions.mts";
import { authorizationRoutes } from "./authorization.mts";
import { containerAppsRoutes } from "./container-apps.mts";
import { Arm, armError, armFaultReply, decodeSegment, fail, withArmHeaders, type Caller } from "./core.mts";
import { deploymentRoutes } from "./deployments.mts";
import { graphRoutes } from "./graph.mts";
import { identityRoutes } from "./identity.mts";
import { keyVaultRoutes } from "./keyvault.mts";
import { metadataRoutes } from "./metadata.mts";
import { resourceRoutes } from "./resources.mts";
import { serviceBusRoutes } from "./servicebus.mts";
import { solutionsRoutes } from "./solutions.mts";
import { storageRoutes } from "./storage.mts";

export function createArmService(ctx: SandboxContext): ServiceDef {
  const arm = new Arm(ctx);

  /** The answer ARM gives for a path no provider route matched (after authentication). */
  const unserved = (c: RouteContext, caller: Caller, apiVersion: string): Reply => {
    const segs = c.url.pathname.split("/").filter(Boolean).map(decodeSegment);
    const lower = segs.map((s) => s.toLowerCase());
    let i = 0;
    let rgName: string | undefined;
    let sub;
    if (lower[0] === "subscriptions" && segs[1]) {
      sub = arm.subscriptionOr404(segs[1]);
      arm.checkTenant(caller, sub);
      i = 2;
      if (lower[2] === "resourcegroups" && segs[3]) {
        rgName = segs[3];
        i = 4;
      }
    }
    if (lower[i] === "providers" && segs[i + 1]) {
      const ns = segs[i + 1];
      if (!NAMESPACES[ns.toLowerCase()]) fail(400, "InvalidResourceNamespace", `The resource namespace '${ns}' is invalid.`);
      // Types alternate with names: providers/NS/type/name/childType/childName/…
      const types = segs.slice(i + 2).filter((_, k) => k % 2 === 0);
      const shortType = types.join("/");
      const fullType = `${NAMESPACES[ns.toLowerCase()]}/${shortType}`;
      if (!types.length || !API_VERSIONS[fullType.toLowerCase()]) {
        fail(400, "InvalidResourceType", `The resource type '${shortType}' could not be found in the namespace '${ns}' for api version '${apiVersion}'.`);
      }
      arm.checkApiVersion(fullType, apiVersion);
      if (c.method === "HEAD") {
        // ARM's existence check on any resource id: 204 or 404, for callers who may read it.
        const id = "/" + segs.join("/");
        arm.authorize(caller, id, `${fullType}/read`);
        if (sub && rgName) arm.rgOr404(sub, rgName);
        return { status: arm.state.getResource(id) ? 204 : 404 };
      }
      if (sub && rgName) arm.rgOr404(sub, rgName);
      fail(405, "MethodNotAllowed", `The requested resource does not support http method '${c.method}'.`);
    }
    if (sub && i < segs.length) {
      // Below a subscription or resource group without a provider: one of ARM's own (Microsoft.Resources) types.
      if (rgName) arm.rgOr404(sub, rgName);
      const shortType = i === 2 ? segs[2] : `resourceGroups/${segs[4]}`;
      fail(400, "InvalidResourceType", `The resource type '${shortType}' could not be found in the namespace 'Microsoft.Resources' for api version '${apiVersion}'.`);
    }
    if (sub || rgName) fail(405, "MethodNotAllowed", `The requested resource does not support http method '${c.method}'.`);
    fail(404, "NotFound", `The sandbox's Resource Manager does not serve '${c.method} ${c.url.pathname}'.`);
  };

  const def: ServiceDef = {
    name: "arm",
    caseInsensitive: true,
    routes: [
      // Anonymous, before every authenticated route.
      ...metadataRoutes(ctx),
      ...resourceRoutes(arm),
      ...solutionsRoutes(arm),
      ...identityRoutes(arm),
      ...storageRoutes(arm),
      ...keyVaultRoutes(arm),
      ...serviceBusRoutes(arm),
      ...containerAppsRoutes(arm),
      ...authorizationRoutes(arm),
      ...deploymentRoutes(arm),
      ...graphRoutes(arm),
      ...["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"].map((method) => ({
        method, path: "/*path", handler: (c: RouteContext) => arm.run(c, (caller, apiVersion) => unserved(c, caller, apiVersion)),
      })),
    ],
    notFound: (c) => withArmHeaders(c, armError(405, "MethodNotAllowed", `The requested resource does not support http method '${c.method}'.`)),
    faultReply: (c, status) => withArmHeaders(c, armFaultReply(c, status)),
  };
  arm.dispatch = createInProcessDispatcher(def);
  return def;
}
