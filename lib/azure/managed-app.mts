// ARM operations on a customer's managed application, as the ISV (az rest): read it, refresh its
// permissions, list tokens of its identities (listTokens), and the role assignments in its
// managed resource group across tenants (`&tenantId=`). docs/azure-behaviour.md §5.1, §5.2, §5.4.
// deno-lint-ignore-file no-explicit-any -- ARM's resource bodies are read field by field, whatever their shape
import { ArmError, UsageError } from "../core/errors.mts";
import { armRequest } from "./arm-resource.mts";
import { getManagedAppResource, type ArmOptions } from "./managed-apps.mts";
import { roleName } from "./roles.mts";

const LIST_TOKENS_API_VERSION = "2019-07-01";
const REFRESH_PERMISSIONS_API_VERSION = "2019-07-01";
const ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01";
export const DEFAULT_TOKEN_AUDIENCE = "https://management.azure.com/";

/** What `3-managed-app show` prints. */
export interface ManagedAppDetails {
  id: string;
  kind?: string;
  location?: string;
  managedResourceGroupId?: string;
  provisioningState?: string;
  plan?: { name?: string; publisher?: string; product?: string; version?: string; promotionCode?: string };
  billingDetails?: { resourceUsageId?: string } | null;
  publisherTenantId?: string;
  identity?: { type?: string; principalId?: string; tenantId?: string; userAssignedIdentities?: Record<string, unknown> };
  authorizations: Array<{ principalId: string; roleDefinitionId: string; roleName?: string }>;
}

/** The fields of docs/azure-behaviour.md §5.1 from a managed application as ARM returns it. Pure. */
export function describeManagedApp(raw: Record<string, any>): ManagedAppDetails {
  const p = raw.properties ?? {};
  return {
    id: raw.id,
    kind: raw.kind ?? undefined,
    location: raw.location ?? undefined,
    managedResourceGroupId: p.managedResourceGroupId ?? undefined,
    provisioningState: p.provisioningState ?? undefined,
    plan: raw.plan ?? undefined,
    billingDetails: p.billingDetails ?? null,
    publisherTenantId: p.publisherTenantId ?? undefined,
    identity: raw.identity ?? undefined,
    authorizations: (Array.isArray(p.authorizations) ? p.authorizations : []).map((a: { principalId: string; roleDefinitionId: string }) => ({
      principalId: a.principalId,
      roleDefinitionId: a.roleDefinitionId,
      ...(roleName(String(a.roleDefinitionId)) ? { roleName: roleName(String(a.roleDefinitionId)) } : {}),
    })),
  };
}

/** The managed application behind a managed resource group, with its raw ARM body. */
export async function getManagedAppDetails(options: { subscriptionId: string; managedResourceGroup: string } & ArmOptions) {
  const { record, ...rest } = options;
  const { id, raw } = await getManagedAppResource(rest);
  const details = describeManagedApp({ ...raw, id: raw.id ?? id });
  await record?.({ operation: "managedApp.show", request: { method: "GET", url: `${details.id}?api-version=2019-07-01` }, response: { status: 200, body: raw } });
  return { details, raw };
}

/** POST …/refreshPermissions: ARM answers 202 and finishes asynchronously (az rest does not poll). */
export async function refreshPermissions(options: { appId: string } & ArmOptions): Promise<unknown> {
  return await armRequest({
    ...options,
    method: "POST",
    url: `${options.appId}/refreshPermissions?api-version=${REFRESH_PERMISSIONS_API_VERSION}`,
    what: `managed application ${options.appId}`,
    operation: "managedApp.refreshPermissions",
  });
}

/** One token from listTokens, in one shape whatever casing ARM used. */
export interface ListedToken {
  token: string;
  /** Epoch ms. */
  expiresOnTimestamp: number;
  resourceId?: string;
  audience?: string;
  tokenType?: string;
}

/**
 * Reads listTokens' answer: `{value:[…]}` with the swagger's camelCase (accessToken, expiresOn, …)
 * or the snake_case of Microsoft's docs and scripts (access_token, expires_on, …); numbers or
 * strings; expires_on in epoch seconds or an ISO date. Pure.
 */
export function parseListTokensResponse(body: unknown): ListedToken[] {
  const value = (body as { value?: unknown })?.value;
  if (!Array.isArray(value)) throw new ArmError(`Cannot read listTokens answer: no value array (got ${JSON.stringify(body)?.slice(0, 80) ?? "nothing"})`);
  return value.map((item: Record<string, unknown>, i) => {
    const pick = (...keys: string[]) => keys.map((k) => item[k]).find((v) => v !== undefined && v !== null);
    const token = pick("accessToken", "access_token");
    if (typeof token !== "string" || token === "") throw new ArmError(`Cannot read listTokens answer: item ${i} has no access token`);
    const expiresOn = pick("expiresOn", "expires_on");
    const expiresIn = pick("expiresIn", "expires_in");
    let expiresMs = NaN;
    if (expiresOn !== undefined) expiresMs = /^\d+(\.\d+)?$/.test(String(expiresOn)) ? Number(expiresOn) * 1000 : Date.parse(String(expiresOn));
    if (!Number.isFinite(expiresMs) && expiresIn !== undefined) expiresMs = Date.now() + Number(expiresIn) * 1000;
    const str = (v: unknown) => typeof v === "string" ? v : undefined;
    return {
      token,
      expiresOnTimestamp: Number.isFinite(expiresMs) ? expiresMs : 0,
      resourceId: str(pick("resourceId", "resource_id")),
      audience: str(pick("authorizationAudience", "resource", "authorization_audience")),
      tokenType: str(pick("tokenType", "token_type")),
    };
  });
}

/**
 * POST …/listTokens: tokens of the application's system-assigned identity (no
 * `userAssignedIdentities`) or of the named user-assigned ones, for `audience`.
 */
export async function listManagedAppTokens(options: { appId: string; audience?: string; userAssignedIdentities?: string[] } & ArmOptions): Promise<{ request: Record<string, unknown>; response: unknown; tokens: ListedToken[] }> {
  const request = {
    authorizationAudience: options.audience ?? DEFAULT_TOKEN_AUDIENCE,
    ...(options.userAssignedIdentities?.length ? { userAssignedIdentities: options.userAssignedIdentities } : {}),
  };
  const response = await armRequest({
    ...options,
    method: "POST",
    url: `${options.appId}/listTokens?api-version=${LIST_TOKENS_API_VERSION}`,
    body: request,
    what: `managed application ${options.appId}`,
    operation: "managedApp.listTokens",
  });
  return { request, response, tokens: parseListTokensResponse(response) };
}

export interface RoleAssignmentRow {
  id: string;
  name: string;
  principalId: string;
  principalType?: string;
  roleDefinitionId: string;
  roleName?: string;
  scope: string;
}

function _mrgScope(subscriptionId: string, managedResourceGroup: string): string {
  return `/subscriptions/${encodeURIComponent(subscriptionId)}/resourceGroups/${encodeURIComponent(managedResourceGroup)}`;
}

/**
 * Role assignments at (and above) the managed resource group, read in the customer's tenant; with
 * `principalId`, that principal's assignments at, above and below it (a vault, a namespace).
 */
export async function listRoleAssignments(options: { subscriptionId: string; managedResourceGroup: string; tenantId: string; principalId?: string } & ArmOptions): Promise<RoleAssignmentRow[]> {
  const scope = _mrgScope(options.subscriptionId, options.managedResourceGroup);
  const filter = options.principalId ? encodeURIComponent(`principalId eq '${options.principalId}'`) : "atScope()";
  const answer = await armRequest({
    ...options,
    method: "GET",
    url: `${scope}/providers/Microsoft.Authorization/roleAssignments?api-version=${ROLE_ASSIGNMENTS_API_VERSION}&tenantId=${encodeURIComponent(options.tenantId)}&$filter=${filter}`,
    what: `role assignments of ${options.subscriptionId}/${options.managedResourceGroup}`,
    operation: "roleAssignments.list",
  }) as { value?: Array<{ id: string; name: string; properties: Record<string, string> }> };
  return (answer?.value ?? []).map((r) => ({
    id: r.id,
    name: r.name,
    principalId: r.properties.principalId,
    principalType: r.properties.principalType,
    roleDefinitionId: r.properties.roleDefinitionId,
    ...(roleName(r.properties.roleDefinitionId) ? { roleName: roleName(r.properties.roleDefinitionId) } : {}),
    scope: r.properties.scope,
  }));
}

/**
 * Deletes one role assignment of the managed resource group (by its GUID name or full id) in the
 * customer's tenant. False when there was none: ARM answers a delete of a missing assignment with
 * 204 and no body (az rest prints nothing), a deleted one with 200 and the assignment.
 */
export async function deleteRoleAssignment(options: { subscriptionId: string; managedResourceGroup: string; tenantId: string; assignment: string } & ArmOptions): Promise<boolean> {
  const scope = _mrgScope(options.subscriptionId, options.managedResourceGroup);
  const id = options.assignment.startsWith("/") ? options.assignment : `${scope}/providers/Microsoft.Authorization/roleAssignments/${encodeURIComponent(options.assignment)}`;
  const answer = await armRequest({
    ...options,
    method: "DELETE",
    url: `${id}?api-version=${ROLE_ASSIGNMENTS_API_VERSION}&tenantId=${encodeURIComponent(options.tenantId)}`,
    what: `role assignment ${options.assignment}`,
    operation: "roleAssignments.delete",
  });
  return answer !== null && answer !== undefined;
}

/**
 * A token of the managed application's own (system-assigned) identity for `audience`, from its
 * listTokens action: the identity the app's template gave roles, when the UAMI has none.
 */
export async function managedAppIdentityToken(o: { subscriptionId: string; managedResourceGroup: string; audience: string } & ArmOptions): Promise<{
  token: ListedToken;
  appId: string;
  principalId?: string;
}> {
  const { details } = await getManagedAppDetails(o);
  const listed = await listManagedAppTokens({ ...o, appId: details.id });
  return { token: listed.tokens[0], appId: details.id, ...(details.identity?.principalId ? { principalId: details.identity.principalId } : {}) };
}

/** A user-assigned identity's resource id for --identity, checked. */
export function parseUserAssignedIdentityId(id: string): string {
  if (!/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/[^/]+$/i.test(id)) {
    throw new UsageError(`Cannot use --identity ${JSON.stringify(id)}: expected a user-assigned identity resource id /subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`);
  }
  return id;
}

/** A role assignment for --delete: its name (a GUID) or its full id. */
export function parseRoleAssignmentRef(value: string): string {
  if (!/^(\/subscriptions\/\S+\/roleAssignments\/)?[0-9a-f-]{36}$/i.test(value)) {
    throw new UsageError(`Cannot use --delete ${JSON.stringify(value)}: expected a role assignment name (GUID) or id`);
  }
  return value;
}

/** A managed application as label/value lines for a person (lib/cli/output.mts renderFields). */
export function managedAppFields(details: ManagedAppDetails): Array<[string, string]> {
  const identity = details.identity;
  return [
    ["id", details.id],
    ["kind", details.kind ?? "-"],
    ["provisioningState", details.provisioningState ?? "-"],
    ["plan", details.plan ? `${details.plan.name} (${details.plan.publisher}/${details.plan.product} ${details.plan.version ?? ""})`.trim() : "-"],
    ["resourceUsageId", details.billingDetails?.resourceUsageId ?? "- (no billing details: not provisioned, or not a Marketplace app)"],
    ["managedRG", details.managedResourceGroupId ?? "-"],
    ["identity", `${identity?.type ?? "None"}${identity?.principalId ? ` principalId ${identity.principalId}` : ""}${identity?.tenantId ? ` tenant ${identity.tenantId}` : ""}`],
    ...Object.keys(identity?.userAssignedIdentities ?? {}).map((id): [string, string] => ["", `user-assigned ${id}`]),
    ...details.authorizations.map((a): [string, string] => ["authorization", `${a.principalId} ${a.roleName ?? a.roleDefinitionId}`]),
  ];
}
