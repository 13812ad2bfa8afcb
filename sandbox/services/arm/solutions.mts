// Microsoft.Solutions: managed applications (read, list), listTokens and refreshPermissions
// (docs/azure-behaviour.md §5.1, §5.2). Applications come from the seeded world; the sandbox does not deploy them.
import type { Route } from "../../core/http.mts";
import { scopeContains, type ArmResource } from "../../core/state.mts";
import { LIST_TOKENS_API, REFRESH_PERMISSIONS_API } from "./api-versions.mts";
import { Arm, fail, newGuid, ok, rgId, subscriptionScope, toWire, type ArmCall } from "./core.mts";
import { recordOperation, operations } from "./resources.mts";

const APP_TYPE = "Microsoft.Solutions/applications";
const APP_BASE = "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/Microsoft.Solutions/applications";
const DEFAULT_TOKEN_AUDIENCE = "https://management.azure.com/";

interface ListTokensBody {
  authorizationAudience?: unknown;
  userAssignedIdentities?: unknown;
}

export function solutionsRoutes(arm: Arm): Route[] {
  const { state } = arm;

  /** Stable client ids of the applications' system-assigned identities (the seed only names their principals). */
  const systemClientIds = state.store("arm.appSystemIdentityClientIds", () => new Map<string, string>());

  const appOr404 = (a: ArmCall, action: string): ArmResource => {
    const id = `${rgId(a.sub.subscriptionId, a.p.resourceGroupName)}/providers/${APP_TYPE}/${a.p.applicationName}`;
    arm.authorize(a.caller, id, action);
    arm.rgOr404(a.sub, a.p.resourceGroupName);
    const app = state.getResource(id);
    if (!app || app.type !== APP_TYPE) arm.notFound(APP_TYPE, a.p.applicationName, a.p.resourceGroupName);
    return app;
  };

  const listTokens = async (a: ArmCall) => {
    const app = appOr404(a, `${APP_TYPE}/listTokens/action`);
    const body = a.body<ListTokensBody>();
    const audience = body.authorizationAudience ?? DEFAULT_TOKEN_AUDIENCE;
    if (typeof audience !== "string" || !audience) fail(400, "BadRequest", "'authorizationAudience' must be a non-empty string.");
    const uamis = body.userAssignedIdentities ?? [];
    if (!Array.isArray(uamis) || !uamis.every((x) => typeof x === "string")) {
      fail(400, "BadRequest", "'userAssignedIdentities' must be an array of user-assigned identity resource ids.");
    }
    const identity = (app.identity ?? {}) as { type?: string; principalId?: string; tenantId?: string; userAssignedIdentities?: Record<string, unknown> };
    const assigned = Object.keys(identity.userAssignedIdentities ?? {}).map((k) => k.toLowerCase());
    const mrg = String(app.properties.managedResourceGroupId ?? "");

    type Subject = { resourceId: string; principalId: string; clientId: string; tenantId: string };
    const subjects: Subject[] = [];
    if (uamis.length === 0) {
      if (!/SystemAssigned/i.test(identity.type ?? "") || !identity.principalId) {
        fail(400, "BadRequest", `The application '${app.id}' has no system-assigned managed identity; name its user-assigned identities in 'userAssignedIdentities'.`);
      }
      let clientId = systemClientIds.get(app.id.toLowerCase());
      if (!clientId) systemClientIds.set(app.id.toLowerCase(), clientId = newGuid());
      subjects.push({ resourceId: app.id, principalId: identity.principalId, clientId, tenantId: identity.tenantId ?? app.tenantId });
    }
    for (const id of uamis as string[]) {
      const uami = state.getResource(id);
      // Identities assigned to the application, or (unconfirmed, lenient) living in its managed resource group.
      const belongs = uami?.type === "Microsoft.ManagedIdentity/userAssignedIdentities" &&
        (assigned.includes(uami.id.toLowerCase()) || (mrg !== "" && scopeContains(mrg, uami.id)));
      if (!uami || !belongs) {
        fail(400, "BadRequest", `The user-assigned identity '${id}' is not associated with the application '${app.id}'.`);
      }
      const p = uami.properties as { principalId: string; clientId: string; tenantId: string };
      subjects.push({ resourceId: uami.id, principalId: p.principalId, clientId: p.clientId, tenantId: p.tenantId });
    }

    const lifetimeS = state.options.entra.managedIdentityTokenLifetimeS;
    const value = [];
    for (const s of subjects) {
      const { token, claims } = await arm.ctx.tokens.issue({
        tenantId: s.tenantId, audience, objectId: s.principalId, appId: s.clientId, idtyp: "app", lifetimeS,
        grant: "listTokens", extraClaims: { xms_mirid: app.id },
      });
      // Both spellings in one item (docs/azure-behaviour.md §5.2): snake_case as Microsoft's docs and
      // scripts read it, camelCase as the REST spec's example (and @azure/arm-managedapplications) has
      // it. Values are strings, like IMDS's.
      const expiresIn = String(Number(claims.exp) - Math.floor(state.now() / 1000));
      value.push({
        access_token: token,
        expires_in: expiresIn,
        expires_on: String(claims.exp),
        not_before: String(claims.nbf),
        token_type: "Bearer",
        accessToken: token,
        expiresIn,
        expiresOn: String(claims.exp),
        notBefore: String(claims.nbf),
        tokenType: "Bearer",
        authorizationAudience: audience,
        resourceId: s.resourceId,
      });
    }
    return ok({ value });
  };

  const refreshPermissions = (a: ArmCall) => {
    const app = appOr404(a, `${APP_TYPE}/refreshPermissions/action`);
    const opId = newGuid();
    recordOperation(arm, opId);
    const status = `${arm.baseUrlAsCalled(a.c)}/subscriptions/${a.sub.subscriptionId}/providers/Microsoft.Solutions/locations/${app.location}/operationStatuses/${opId}?api-version=${a.apiVersion}`;
    return ok(undefined, 202, { "Azure-AsyncOperation": status, Location: status, "Retry-After": "0" });
  };

  return [
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.Solutions/applications", type: APP_TYPE,
      handler: (a) => ok({
        value: state.ofTypeUnder(APP_TYPE, subscriptionScope(a.sub.subscriptionId))
          .filter((r) => arm.allowed(a.caller.oid, r.id, `${APP_TYPE}/read`))
          .sort((x, y) => x.id.localeCompare(y.id)).map(toWire),
      }),
    }),
    arm.route({
      method: "GET", path: APP_BASE, type: APP_TYPE,
      handler: (a) => {
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        const value = state.ofTypeUnder(APP_TYPE, rg.id)
          .filter((r) => arm.allowed(a.caller.oid, r.id, `${APP_TYPE}/read`))
          .sort((x, y) => x.id.localeCompare(y.id)).map(toWire);
        if (value.length === 0) arm.authorize(a.caller, rg.id, `${APP_TYPE}/read`);
        return ok({ value });
      },
    }),
    arm.route({ method: "GET", path: `${APP_BASE}/:applicationName`, type: APP_TYPE, handler: (a) => ok(toWire(appOr404(a, `${APP_TYPE}/read`))) }),
    arm.route({ method: "POST", path: `${APP_BASE}/:applicationName/listTokens`, type: APP_TYPE, versions: LIST_TOKENS_API, handler: listTokens }),
    arm.route({ method: "POST", path: `${APP_BASE}/:applicationName/refreshPermissions`, type: APP_TYPE, versions: REFRESH_PERMISSIONS_API, handler: refreshPermissions }),
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/providers/Microsoft.Solutions/locations/:location/operationStatuses/:operationId",
      type: "Microsoft.Solutions/locations/operationStatuses",
      handler: (a) => {
        const op = operations(arm).get(a.p.operationId.toLowerCase());
        if (!op) fail(404, "OperationNotFound", `The operation '${a.p.operationId}' could not be found.`);
        return ok({
          id: `/subscriptions/${a.sub.subscriptionId}/providers/Microsoft.Solutions/locations/${a.p.location}/operationStatuses/${op.id}`,
          name: op.id, status: op.status, startTime: op.startTime, endTime: op.endTime,
        });
      },
    }),
  ];
}
