// ARM's own resources: subscriptions, tenants, resource groups, resource lists, and the status
// URLs of the asynchronous operations the other providers start.
import type { Route } from "../../core/http.mts";
import { scopeContains, type ArmResource, type Subscription } from "../../core/state.mts";
import { Arm, fail, ok, rgId, subscriptionScope, tagsOf, toWire, type ArmCall, type Caller } from "./core.mts";

const RG_TYPE = "Microsoft.Resources/resourceGroups";

// ---------------------------------------------------------------- asynchronous operations

interface AsyncOperation {
  id: string;
  status: "Succeeded" | "Failed";
  startTime: string;
  endTime: string;
}

/** Finished operations by id; the sandbox completes work synchronously, the status URLs say so. */
export function operations(arm: Arm): Map<string, AsyncOperation> {
  return arm.state.store("arm.operations", () => new Map<string, AsyncOperation>());
}

export function recordOperation(arm: Arm, opId: string): AsyncOperation {
  const at = new Date(arm.state.now()).toISOString();
  const op: AsyncOperation = { id: opId, status: "Succeeded", startTime: at, endTime: at };
  operations(arm).set(opId.toLowerCase(), op);
  return op;
}

// ---------------------------------------------------------------- wire shapes

function subscriptionWire(s: Subscription, caller: Caller): Record<string, unknown> {
  return {
    id: subscriptionScope(s.subscriptionId),
    authorizationSource: "RoleBased",
    managedByTenants: [],
    subscriptionId: s.subscriptionId,
    tenantId: s.tenantId,
    displayName: s.displayName,
    state: s.state,
    subscriptionPolicies: { locationPlacementId: "Public_2014-09-01", quotaId: "PayAsYouGo_2014-09-01", spendingLimit: "Off" },
    ...(caller.tid.toLowerCase() !== s.tenantId.toLowerCase() ? { homeTenantId: s.tenantId } : {}),
  };
}

function rgWire(r: ArmResource): Record<string, unknown> {
  const w = toWire(r);
  return { id: w.id, name: w.name, type: RG_TYPE, location: w.location, ...(r.managedBy ? { managedBy: r.managedBy } : {}), ...(r.tags ? { tags: r.tags } : {}), properties: { provisioningState: "Succeeded" } };
}

// ---------------------------------------------------------------- routes

export function resourceRoutes(arm: Arm): Route[] {
  const { state } = arm;

  const canRead = (caller: Caller, r: ArmResource) => arm.allowed(caller.oid, r.id, `${r.type}/read`);

  const getSubscription = (a: ArmCall) => {
    // Any role in the subscription makes it readable (as with an RG-level assignment in Azure).
    if (!arm.hasAnyRoleAround(a.caller.oid, subscriptionScope(a.sub.subscriptionId))) {
      arm.authorize(a.caller, subscriptionScope(a.sub.subscriptionId), "Microsoft.Resources/subscriptions/read");
    }
    return ok(subscriptionWire(a.sub, a.caller));
  };

  const rgDelete = (a: ArmCall) => {
    const id = rgId(a.sub.subscriptionId, a.p.resourceGroupName);
    arm.authorize(a.caller, id, "Microsoft.Resources/subscriptions/resourceGroups/delete");
    const rg = state.getResource(id);
    if (!rg || rg.type !== RG_TYPE) fail(404, "ResourceGroupNotFound", `Resource group '${a.p.resourceGroupName}' could not be found.`);
    if (rg.managedBy) {
      // A managed resource group goes away with its application only. Real ARM answers through the
      // application's deny assignment; the sandbox's code and text here are its own (unconfirmed).
      fail(409, "ManagedResourceGroupDeletionNotAllowed",
        `The resource group '${rg.name}' is the managed resource group of '${rg.managedBy}' and can only be deleted by deleting that resource.`);
    }
    for (const r of state.listResources((x) => x.subscriptionId === rg.subscriptionId && (x.resourceGroup ?? "").toLowerCase() === rg.name.toLowerCase())) {
      void arm.ctx.keyVault.closeVault?.(r.id);
      void arm.ctx.serviceBus.closeNamespace(r.id);
    }
    state.deleteResource(rg.id);
    const opId = `RESOURCEGROUPDELETIONJOB-${rg.name.toUpperCase()}-${a.c.requestId.slice(0, 8).toUpperCase()}`;
    recordOperation(arm, opId);
    const location = `${arm.ctx.endpoints.arm}/subscriptions/${a.sub.subscriptionId}/operationresults/${Buffer.from(opId).toString("base64url")}?api-version=${a.apiVersion}`;
    return ok(undefined, 202, { Location: location, "Retry-After": "0" });
  };

  return [
    arm.route({
      method: "GET", path: "/subscriptions", type: "Microsoft.Resources/subscriptions",
      handler: (a) => {
        const value = arm.visibleSubscriptions(a.caller).map((s) => subscriptionWire(s, a.caller));
        return ok({ value, count: { type: "Total", value: value.length } });
      },
    }),
    arm.route({ method: "GET", path: "/subscriptions/:subscriptionId", type: "Microsoft.Resources/subscriptions", handler: getSubscription }),
    arm.route({
      method: "GET", path: "/tenants", type: "Microsoft.Resources/tenants",
      handler: (a) => {
        const ids = new Set([a.caller.tid, ...arm.visibleSubscriptions(a.caller).map((s) => s.tenantId)]);
        const value = [...ids].map((tid) => state.tenants.get(tid)).filter((t) => t !== undefined).map((t) => ({
          id: `/tenants/${t.tenantId}`,
          tenantId: t.tenantId,
          countryCode: "US",
          displayName: t.displayName,
          domains: t.domains,
          tenantCategory: t.tenantId === a.caller.tid ? "Home" : "ProjectedBy",
          defaultDomain: t.defaultDomain,
          tenantType: "AAD",
        }));
        return ok({ value });
      },
    }),

    // ---- resource groups
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/resourcegroups", type: RG_TYPE,
      handler: (a) => ok({
        value: state.ofType(RG_TYPE)
          .filter((r) => r.subscriptionId === a.sub.subscriptionId && canRead(a.caller, r))
          .sort((x, y) => x.name.localeCompare(y.name)).map(rgWire),
      }),
    }),
    arm.route({
      method: "PUT", path: "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName", type: RG_TYPE,
      handler: (a) => {
        const name = a.p.resourceGroupName;
        const existing = state.getResource(rgId(a.sub.subscriptionId, name));
        const id = existing?.id ?? rgId(a.sub.subscriptionId, name);
        arm.authorize(a.caller, id, "Microsoft.Resources/subscriptions/resourceGroups/write");
        if (name.length > 90 || !/^[-\w._()]+$/u.test(name) || name.endsWith(".")) {
          fail(400, "InvalidResourceGroupName", `The resource group name '${name}' is invalid. It can include alphanumeric, underscore, parentheses, hyphen, period (except at end), and Unicode characters that match the allowed characters.`);
        }
        const body = a.body<{ location?: string; tags?: Record<string, string>; managedBy?: string }>();
        const location = arm.location(body, RG_TYPE);
        if (existing && existing.location !== location) {
          fail(409, "InvalidResourceGroupLocation", `Invalid resource group location '${body.location}'. The Resource group already exists in location '${existing.location}'.`);
        }
        const rg: ArmResource = {
          ...(existing ?? {}),
          id, name: existing?.name ?? name, type: RG_TYPE, location,
          tags: tagsOf(body) ?? existing?.tags,
          managedBy: existing?.managedBy ?? body.managedBy,
          properties: { provisioningState: "Succeeded" },
          tenantId: a.sub.tenantId, subscriptionId: a.sub.subscriptionId, resourceGroup: existing?.name ?? name,
          createdAtMs: existing?.createdAtMs ?? state.now(),
        };
        state.putResource(rg);
        return ok(rgWire(rg), existing ? 200 : 201);
      },
    }),
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName", type: RG_TYPE,
      handler: (a) => {
        const id = rgId(a.sub.subscriptionId, a.p.resourceGroupName);
        arm.authorize(a.caller, id, "Microsoft.Resources/subscriptions/resourceGroups/read");
        return ok(rgWire(arm.rgOr404(a.sub, a.p.resourceGroupName)));
      },
    }),
    arm.route({
      method: "HEAD", path: "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName", type: RG_TYPE,
      handler: (a) => {
        arm.authorize(a.caller, rgId(a.sub.subscriptionId, a.p.resourceGroupName), "Microsoft.Resources/subscriptions/resourceGroups/read");
        const rg = state.getResource(rgId(a.sub.subscriptionId, a.p.resourceGroupName));
        return ok(undefined, rg?.type === RG_TYPE ? 204 : 404);
      },
    }),
    arm.route({
      method: "PATCH", path: "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName", type: RG_TYPE,
      handler: (a) => {
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        arm.authorize(a.caller, rg.id, "Microsoft.Resources/subscriptions/resourceGroups/write");
        const body = a.body<{ tags?: Record<string, string> }>();
        rg.tags = tagsOf(body) ?? rg.tags;
        return ok(rgWire(rg));
      },
    }),
    arm.route({ method: "DELETE", path: "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName", type: RG_TYPE, handler: rgDelete }),

    // ---- lists of resources
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/resources", type: "Microsoft.Resources/resources",
      handler: (a) => ok({ value: listTracked(arm, a, (r) => r.subscriptionId === a.sub.subscriptionId) }),
    }),
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/resources", type: "Microsoft.Resources/resources",
      handler: (a) => {
        const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
        return ok({ value: listTracked(arm, a, (r) => r.subscriptionId === a.sub.subscriptionId && scopeContains(rg.id, r.id) && r.id.toLowerCase() !== rg.id.toLowerCase()) });
      },
    }),

    // ---- status of asynchronous operations (resource group deletion)
    arm.route({
      method: "GET", path: "/subscriptions/:subscriptionId/operationresults/:operationId", type: "Microsoft.Resources/operationresults",
      handler: (a) => {
        let opId = "";
        try {
          opId = Buffer.from(a.p.operationId, "base64url").toString("utf8");
        } catch { /* unknown below */ }
        if (!operations(arm).has(opId.toLowerCase())) fail(404, "OperationNotFound", `The operation '${a.p.operationId}' could not be found.`);
        return ok(undefined, 200);
      },
    }),
  ];
}

/** Top-level tracked resources (provider/type/name) passing `filter` that the caller can read. */
function listTracked(arm: Arm, a: ArmCall, filter: (r: ArmResource) => boolean): Record<string, unknown>[] {
  return arm.state.listResources((r) => isTracked(r) && filter(r) && arm.allowed(a.caller.oid, r.id, `${r.type}/read`))
    .sort((x, y) => x.id.localeCompare(y.id))
    .map(toWire);
}

/** A top-level resource of a provider, as ARM lists and Resource Graph's `resources` table holds them. */
export function isTracked(r: ArmResource): boolean {
  const [ns, ...rest] = r.type.split("/");
  const n = ns.toLowerCase();
  return rest.length === 1 && n !== "microsoft.resources" && n !== "microsoft.authorization";
}

