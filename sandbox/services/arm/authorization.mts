// Microsoft.Authorization: role assignments at any scope (tenant root, subscription, resource
// group, resource, child resource) and the built-in role definitions the sandbox knows.
import type { Route } from "../../core/http.mts";
import { ROLE_DEFINITIONS, scopeContains, type ArmResource } from "../../core/state.mts";
import { appDirectory } from "../entra/applications.mts";
import { Arm, decodeSegment, fail, isGuid, lastSegment, ok, type ArmCall } from "./core.mts";

const RA_TYPE = "Microsoft.Authorization/roleAssignments";
const RD_TYPE = "Microsoft.Authorization/roleDefinitions";
const PRINCIPAL_TYPES = ["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"];
/** When Microsoft published the built-in roles; shown as their createdOn. */
const BUILT_IN_CREATED_ON = "2015-02-02T21:55:09.8806423Z";

/** Route prefixes of every scope depth a role assignment can hang on. */
const SCOPE_PATTERNS = [
  "",
  "/subscriptions/:subscriptionId",
  "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName",
  "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/:ns1/:type1/:name1",
  "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/:ns1/:type1/:name1/:type2/:name2",
  "/subscriptions/:subscriptionId/resourcegroups/:resourceGroupName/providers/:ns1/:type1/:name1/:type2/:name2/:type3/:name3",
];

/** The scope part of a request path ("" for the tenant root), decoded. */
function scopeOf(pathname: string): string {
  const segs = pathname.split("/").filter(Boolean).map(decodeSegment);
  for (let i = segs.length - 2; i >= 0; i--) {
    if (segs[i].toLowerCase() === "providers" && segs[i + 1].toLowerCase() === "microsoft.authorization") {
      return segs.slice(0, i).length ? "/" + segs.slice(0, i).join("/") : "";
    }
  }
  return "";
}

export function authorizationRoutes(arm: Arm): Route[] {
  const { state } = arm;

  /** The scope as stored ids spell it; 404 when it names nothing. */
  const resolveScope = (a: ArmCall): string => {
    const raw = scopeOf(a.c.url.pathname);
    if (!a.p.subscriptionId) return raw;
    const subScope = `/subscriptions/${a.sub.subscriptionId}`;
    if (!a.p.resourceGroupName) return subScope;
    const rg = arm.rgOr404(a.sub, a.p.resourceGroupName);
    if (!a.p.ns1) return rg.id;
    const res = state.getResource(raw);
    if (!res) arm.notFound(`${a.p.ns1}/${a.p.type1}`, a.p.name1, a.p.resourceGroupName);
    return res.id;
  };

  /**
   * `&tenantId=` on role assignment calls (docs/azure-behaviour.md §5.4, arsenvlad's cross-tenant sample): when given it
   * must name the subscription's tenant; a caller from another tenant (a publisher reading or
   * deleting assignments in a customer's managed resource group) must give it when
   * options.arm.crossTenantRoleAssignmentsNeedTenantId is on. Writes are exempt: deployments make
   * them without it. Status, code and wording are the sandbox's own (unconfirmed).
   */
  const checkTenantParam = (a: ArmCall) => {
    const subTenant = a.p.subscriptionId ? a.sub.tenantId : undefined;
    if (!subTenant) return;
    const given = a.c.url.searchParams.get("tenantId");
    if (given !== null) {
      if (given.toLowerCase() !== subTenant.toLowerCase()) {
        fail(403, "AuthorizationFailed", `The tenantId '${given}' is not the tenant of subscription '${a.sub.subscriptionId}' ('${subTenant}'); role assignments there are managed in that tenant.`);
      }
      return;
    }
    if (state.options.arm.crossTenantRoleAssignmentsNeedTenantId && a.caller.tid.toLowerCase() !== subTenant.toLowerCase()) {
      fail(403, "AuthorizationFailed", `The client '${a.caller.oid}' of tenant '${a.caller.tid}' does not have authorization to perform action '${RA_TYPE}/read' in tenant '${subTenant}' without naming it: add '&tenantId=${subTenant}' to the request.`);
    }
  };

  /** The resource whose managed identity `principalId` is, in `tenantId`: a UAMI or a resource with a system-assigned identity. */
  const managedIdentityResourceOf = (principalId: string, tenantId: string): ArmResource | undefined => {
    const want = principalId.toLowerCase();
    const uami = state.findIdentityByPrincipalId(want);
    if (uami && String(uami.tenantId).toLowerCase() === tenantId.toLowerCase()) return uami;
    return state.managedApps().find((app) => String(app.identity?.principalId ?? "").toLowerCase() === want && String(app.identity?.tenantId ?? app.tenantId).toLowerCase() === tenantId.toLowerCase());
  };

  /**
   * A role assignment written by a caller of another (home) tenant for a managed identity of the
   * subscription's tenant needs `delegatedManagedIdentityResourceId` naming that identity's
   * resource (options.arm.crossTenantManagedIdentityNeedsDelegatedId): ARM otherwise looks the
   * principal up in the caller's directory. Code and wording as Azure's PrincipalNotFound
   * (the cross-tenant case itself is unconfirmed).
   */
  const checkDelegatedIdentity = (a: ArmCall, principalId: string, delegated: unknown) => {
    const subTenant = a.p.subscriptionId ? a.sub.tenantId : undefined;
    if (!subTenant) return;
    // The caller's own tenant decides, not the token's: the ISV user signed in to a customer's
    // subscription (az picks the subscription's tenant) is still a publisher writing across tenants.
    const home = state.users.get(a.caller.oid)?.tenantId ?? a.caller.tid;
    if (home.toLowerCase() === subTenant.toLowerCase()) {
      // Same tenant (a publisher trying its own offer, a purchase's mainTemplate): the property is
      // for an identity of another tenant and "cannot be used" here (docs/azure-behaviour.md §5.4).
      // Azure's error for it is unconfirmed: 400 BadRequest with the sandbox's wording.
      if (state.options.arm.sameTenantRefusesDelegatedId && typeof delegated === "string" && delegated !== "") {
        fail(400, "BadRequest", `The role assignment names delegatedManagedIdentityResourceId '${delegated}', but its principal and the caller are in the same tenant '${subTenant}': the property is only for a managed identity of another tenant. Leave it out.`);
      }
      return;
    }
    if (!state.options.arm.crossTenantManagedIdentityNeedsDelegatedId) return;
    const owner = managedIdentityResourceOf(principalId, subTenant);
    if (!owner) return;
    if (typeof delegated === "string" && delegated.replace(/\/+$/, "").toLowerCase() === owner.id.toLowerCase()) return;
    fail(400, "PrincipalNotFound", `Principal ${principalId.replace(/-/g, "")} does not exist in the directory ${home}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group. See https://aka.ms/docs-principaltype`);
  };

  /**
   * What the directory of `tenantId` says `principalId` is, when the sandbox knows it: a user,
   * or a service principal (an app's, a managed identity's, a managed app's system identity, the
   * ISV's compute identity).
   */
  const directoryTypeOf = (principalId: string, tenantId: string): "User" | "ServicePrincipal" | undefined => {
    const want = principalId.toLowerCase();
    const inTenant = (t: unknown) => String(t ?? "").toLowerCase() === tenantId.toLowerCase();
    for (const u of state.users.values()) if (u.objectId.toLowerCase() === want && inTenant(u.tenantId)) return "User";
    if (managedIdentityResourceOf(principalId, tenantId)) return "ServicePrincipal";
    // The ISV's own compute identity (the world's timer job), which has no resource in ARM's state.
    const isvMi = state.seed.isv.managedIdentity;
    if (isvMi && isvMi.principalId.toLowerCase() === want && inTenant(state.seed.isv.tenantId)) return "ServicePrincipal";
    for (const sp of appDirectory(state).servicePrincipals.values()) if (sp.id.toLowerCase() === want && inTenant(sp.tenantId)) return "ServicePrincipal";
    return undefined;
  };

  /**
   * ARM checks `principalType` against the directory and refuses a mismatch (a service principal
   * named as a User: automation running a template written for a person). Code and wording as
   * Azure's, its "PrinciaplType" misspelling included; the object id's form in the message is
   * unconfirmed (as PrincipalNotFound's: without dashes). An unknown principal is not checked here.
   */
  const checkPrincipalType = (a: ArmCall, principalId: string, principalType: string) => {
    const tenantId = a.sub?.tenantId ?? a.caller.tid;
    const actual = directoryTypeOf(principalId, tenantId);
    if (actual && actual !== principalType && (principalType === "User" || principalType === "ServicePrincipal")) {
      fail(400, "UnmatchedPrincipalType", `The PrincipalId '${principalId.replace(/-/g, "")}' has type '${actual}' , which is different from specified PrinciaplType '${principalType}'.`);
    }
  };

  const roleDefinitionIdFor = (scope: string, roleId: string) => {
    const sub = /^\/subscriptions\/[^/]+/i.exec(scope)?.[0];
    return `${sub ?? ""}/providers/${RD_TYPE}/${roleId}`;
  };

  const raWire = (r: ArmResource) => {
    const p = r.properties as Record<string, unknown>;
    const created = new Date(r.createdAtMs).toISOString();
    return {
      id: r.id,
      name: lastSegment(r.id),
      type: RA_TYPE,
      properties: {
        roleDefinitionId: p.roleDefinitionId,
        principalId: p.principalId,
        principalType: p.principalType ?? "User",
        scope: p.scope,
        condition: p.condition ?? null,
        conditionVersion: p.conditionVersion ?? null,
        createdOn: p.createdOn ?? created,
        updatedOn: p.updatedOn ?? created,
        createdBy: p.createdBy ?? null,
        updatedBy: p.updatedBy ?? null,
        delegatedManagedIdentityResourceId: p.delegatedManagedIdentityResourceId ?? null,
        description: p.description ?? null,
      },
    };
  };

  const rdWire = (scope: string, roleId: string) => {
    const d = ROLE_DEFINITIONS[roleId];
    return {
      id: roleDefinitionIdFor(scope, roleId),
      name: roleId,
      type: RD_TYPE,
      properties: {
        roleName: d.roleName,
        type: "BuiltInRole",
        description: `Built-in role '${d.roleName}' (the sandbox models the actions it checks).`,
        assignableScopes: ["/"],
        permissions: [{ actions: d.actions, notActions: d.notActions, dataActions: d.dataActions, notDataActions: [] }],
        createdOn: BUILT_IN_CREATED_ON,
        updatedOn: BUILT_IN_CREATED_ON,
        createdBy: null,
        updatedBy: null,
      },
    };
  };

  const assignments = () => state.ofType(RA_TYPE);
  const raIdOf = (scope: string, name: string) => `${scope}/providers/${RA_TYPE}/${name}`;

  const putAssignment = (a: ArmCall) => {
    const name = a.p.roleAssignmentName;
    if (!isGuid(name)) fail(400, "InvalidRoleAssignmentId", `The role assignment ID '${name}' is not valid. The role assignment ID must be a GUID.`);
    const scope = resolveScope(a);
    arm.authorize(a.caller, scope || "/", `${RA_TYPE}/write`);
    const body = a.body<{ properties?: { roleDefinitionId?: unknown; principalId?: unknown; principalType?: unknown; description?: unknown; condition?: unknown; conditionVersion?: unknown; delegatedManagedIdentityResourceId?: unknown } }>();
    const p = body.properties;
    if (!p || typeof p !== "object") fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'.");
    if (typeof p.roleDefinitionId !== "string") fail(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'roleDefinitionId' not found in JSON.'.");
    const roleId = lastSegment(p.roleDefinitionId).toLowerCase();
    if (!/\/providers\/Microsoft\.Authorization\/roleDefinitions\/[^/]+$/i.test(p.roleDefinitionId) || !ROLE_DEFINITIONS[roleId]) {
      fail(400, "RoleDefinitionDoesNotExist", `The specified role definition with ID '${lastSegment(p.roleDefinitionId)}' does not exist.`);
    }
    if (typeof p.principalId !== "string" || !isGuid(p.principalId)) {
      fail(400, "InvalidPrincipalId", `A valid principal ID must be provided for role assignment; '${String(p.principalId ?? "")}' is not one.`);
    }
    const principalType = p.principalType ?? "User";
    if (typeof principalType !== "string" || !PRINCIPAL_TYPES.includes(principalType)) {
      fail(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'Error converting value "${String(principalType)}" to type 'PrincipalType'.'.`);
    }
    checkDelegatedIdentity(a, p.principalId, p.delegatedManagedIdentityResourceId);
    checkPrincipalType(a, p.principalId, principalType);
    const id = raIdOf(scope, name);
    const principalId = p.principalId.toLowerCase();
    const roleDefinitionId = roleDefinitionIdFor(scope, roleId);
    const existing = state.getResource(id);
    if (existing) {
      const ep = existing.properties as { principalId?: string; roleDefinitionId?: string };
      if (String(ep.principalId).toLowerCase() !== principalId || lastSegment(String(ep.roleDefinitionId)).toLowerCase() !== roleId) {
        fail(400, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.");
      }
      return ok(raWire(existing), 200);
    }
    const duplicate = assignments().find((r) => {
      const rp = r.properties as { principalId?: string; roleDefinitionId?: string; scope?: string };
      return String(rp.principalId).toLowerCase() === principalId && lastSegment(String(rp.roleDefinitionId)).toLowerCase() === roleId &&
        String(rp.scope ?? "").toLowerCase() === scope.toLowerCase();
    });
    if (duplicate) fail(409, "RoleAssignmentExists", `The role assignment already exists. The ID of the existing role assignment is ${lastSegment(duplicate.id)}.`);
    const now = new Date(state.now()).toISOString();
    const r: ArmResource = {
      id, name, type: RA_TYPE,
      properties: {
        roleDefinitionId, principalId, principalType, scope: scope || "/",
        ...(typeof p.description === "string" ? { description: p.description } : {}),
        ...(typeof p.condition === "string" ? { condition: p.condition, conditionVersion: p.conditionVersion ?? "2.0" } : {}),
        ...(typeof p.delegatedManagedIdentityResourceId === "string" ? { delegatedManagedIdentityResourceId: p.delegatedManagedIdentityResourceId } : {}),
        createdOn: now, updatedOn: now, createdBy: a.caller.oid, updatedBy: a.caller.oid,
      },
      tenantId: a.sub?.tenantId ?? a.caller.tid,
      subscriptionId: a.sub?.subscriptionId ?? "",
      resourceGroup: a.p.resourceGroupName,
      createdAtMs: state.now(),
    };
    state.putResource(r);
    return ok(raWire(r), 201);
  };

  const getAssignment = (a: ArmCall) => {
    checkTenantParam(a);
    const scope = resolveScope(a);
    arm.authorize(a.caller, scope || "/", `${RA_TYPE}/read`);
    const r = state.getResource(raIdOf(scope, a.p.roleAssignmentName));
    if (!r || r.type !== RA_TYPE) fail(404, "RoleAssignmentNotFound", `The role assignment '${a.p.roleAssignmentName}' is not found.`);
    return ok(raWire(r));
  };

  const deleteAssignment = (a: ArmCall) => {
    checkTenantParam(a);
    const scope = resolveScope(a);
    arm.authorize(a.caller, scope || "/", `${RA_TYPE}/delete`);
    const r = state.getResource(raIdOf(scope, a.p.roleAssignmentName));
    if (!r || r.type !== RA_TYPE) return ok(undefined, 204);
    state.deleteResource(r.id);
    return ok(raWire(r));
  };

  /** `$filter`: atScope(), principalId eq '…', assignedTo('…'), joined with `and` (docs/azure-behaviour.md §5.4). */
  const parseFilter = (filter: string | null): { atScope: boolean; principalId?: string } => {
    const out: { atScope: boolean; principalId?: string } = { atScope: false };
    if (!filter || !filter.trim()) return out;
    for (const part of filter.split(/\s+and\s+/i)) {
      const t = part.trim();
      let m: RegExpExecArray | null;
      if (/^atScope\(\)$/i.test(t)) out.atScope = true;
      else if ((m = /^principalId\s+eq\s+'([^']*)'$/i.exec(t)) || (m = /^assignedTo\('([^']*)'\)$/i.exec(t))) out.principalId = m[1].toLowerCase();
      else {
        fail(400, "UnsupportedQuery", `The filter '${filter}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{value}' or assignedTo('{value}')'.`);
      }
    }
    return out;
  };

  const listAssignments = (a: ArmCall) => {
    checkTenantParam(a);
    const scope = resolveScope(a);
    arm.authorize(a.caller, scope || "/", `${RA_TYPE}/read`);
    const f = parseFilter(a.c.url.searchParams.get("$filter"));
    const value = assignments().filter((r) => {
      const rp = r.properties as { principalId?: string; scope?: string };
      const s = String(rp.scope ?? "");
      const above = scopeContains(s === "/" ? "" : s, scope);
      const below = scopeContains(scope, s === "/" ? "" : s);
      if (f.atScope ? !above : !(above || below)) return false;
      return f.principalId === undefined || String(rp.principalId).toLowerCase() === f.principalId;
    }).sort((x, y) => x.createdAtMs - y.createdAtMs || x.id.localeCompare(y.id)).map(raWire);
    return ok({ value });
  };

  const getDefinition = (a: ArmCall) => {
    const scope = resolveScope(a);
    const roleId = a.p.roleDefinitionId.toLowerCase();
    if (!ROLE_DEFINITIONS[roleId]) fail(404, "RoleDefinitionDoesNotExist", `The role definition '${a.p.roleDefinitionId}' could not be found.`);
    return ok(rdWire(scope, roleId));
  };

  const listDefinitions = (a: ArmCall) => {
    const scope = resolveScope(a);
    const filter = a.c.url.searchParams.get("$filter");
    let ids = Object.keys(ROLE_DEFINITIONS);
    if (filter) {
      const m = /^\s*roleName\s+eq\s+'([^']*)'\s*$/i.exec(filter);
      const t = /^\s*type\s+eq\s+'([^']*)'\s*$/i.exec(filter);
      if (m) ids = ids.filter((id) => ROLE_DEFINITIONS[id].roleName.toLowerCase() === m[1].toLowerCase());
      else if (t) ids = t[1].toLowerCase() === "builtinrole" ? ids : [];
      else fail(400, "UnsupportedQuery", `The filter '${filter}' is not supported. Supported filters are 'roleName eq '{value}'' and 'type eq '{value}''.`);
    }
    return ok({ value: ids.map((id) => rdWire(scope, id)) });
  };

  const routes: Route[] = [];
  for (const prefix of SCOPE_PATTERNS) {
    const ra = `${prefix}/providers/Microsoft.Authorization/roleAssignments`;
    const rd = `${prefix}/providers/Microsoft.Authorization/roleDefinitions`;
    routes.push(
      arm.route({ method: "GET", path: ra, type: RA_TYPE, handler: listAssignments }),
      arm.route({ method: "PUT", path: `${ra}/:roleAssignmentName`, type: RA_TYPE, handler: putAssignment }),
      arm.route({ method: "GET", path: `${ra}/:roleAssignmentName`, type: RA_TYPE, handler: getAssignment }),
      arm.route({ method: "DELETE", path: `${ra}/:roleAssignmentName`, type: RA_TYPE, handler: deleteAssignment }),
      arm.route({ method: "GET", path: rd, type: RD_TYPE, handler: listDefinitions }),
      arm.route({ method: "GET", path: `${rd}/:roleDefinitionId`, type: RD_TYPE, handler: getDefinition }),
    );
  }
  return routes;
}
