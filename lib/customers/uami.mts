// The customer-side identity through `az rest` (ARM-relative URLs): the user-assigned managed
// identity in the managed resource group and its federated identity credentials. Read for the
// doctor, deleted for offboarding.
import { ArmError, AzError } from "../core/errors.mts";
import type { AzRest } from "../azure/az.mts";
import type { ArmOptions } from "../azure/managed-apps.mts";

const MANAGED_IDENTITY_API_VERSION = "2023-01-31";

export interface UserAssignedIdentity {
  id: string;
  name: string;
  clientId: string;
  principalId: string;
  tenantId: string;
}

export interface FederatedCredential {
  id: string;
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
}

/** The `properties` bag of an ARM resource as an object of unknowns. */
function _props(resource: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const p = resource?.properties;
  return typeof p === "object" && p !== null ? (p as Record<string, unknown>) : {};
}

async function _rest(options: ArmOptions): Promise<AzRest> {
  return options.azRest ?? (await import("../azure/az.mts")).rest;
}

/** True when az rest failed because ARM answered 404 (the resource or its group is gone). */
export function isArmNotFound(error: unknown): boolean {
  if (!(error instanceof AzError)) return false;
  const line = error.errorLine ?? error.message;
  // az prints ARM's error as "(Code) message" (azure-cli's own form), or the raw body, or "Not Found".
  return /^Not Found\b/i.test(line) || /"code"\s*:\s*"(ResourceNotFound|ResourceGroupNotFound|NotFound|ParentResourceNotFound)"/.test(line) ||
    /^\((ResourceNotFound|ResourceGroupNotFound|NotFound|ParentResourceNotFound)\)/.test(line);
}

/** `/subscriptions/<sub>/resourceGroups/<mrg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>` */
export function userAssignedIdentityId(options: { subscriptionId: string; resourceGroup: string; name: string }): string {
  const e = encodeURIComponent;
  return `/subscriptions/${e(options.subscriptionId)}/resourceGroups/${e(options.resourceGroup)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${e(options.name)}`;
}

function _fail(what: string, cause: unknown): ArmError {
  const line = cause instanceof AzError ? cause.errorLine ?? cause.message : String((cause as Error)?.message ?? cause);
  return new ArmError(`Cannot ${what}: ${line}`, { cause });
}

/** The identity, or undefined when ARM says it does not exist. */
export async function getUserAssignedIdentity(options: { id: string } & ArmOptions): Promise<UserAssignedIdentity | undefined> {
  const rest = await _rest(options);
  let raw: Record<string, unknown> | null;
  try {
    raw = (await rest({ command: options.command, env: options.env, method: "GET", url: `${options.id}?api-version=${MANAGED_IDENTITY_API_VERSION}` })) as Record<string, unknown> | null;
  } catch (cause) {
    if (isArmNotFound(cause)) return undefined;
    throw _fail(`read managed identity ${options.id}`, cause);
  }
  const p = _props(raw);
  return { id: String(raw?.id ?? options.id), name: String(raw?.name ?? ""), clientId: String(p.clientId ?? ""), principalId: String(p.principalId ?? ""), tenantId: String(p.tenantId ?? "") };
}

/**
 * Every item of an ARM list, following nextLink (at most 50 pages), each made by `item`; the
 * items so far when the parent is gone (404).
 */
async function _listAll<T>(options: ArmOptions, url: string, what: string, item: (r: Record<string, unknown>, p: Record<string, unknown>) => T): Promise<T[]> {
  const rest = await _rest(options);
  const out: T[] = [];
  let next: string | undefined = url;
  for (let page = 0; next && page < 50; page++) {
    let answer: { value?: Record<string, unknown>[]; nextLink?: string } | null;
    try {
      answer = (await rest({ command: options.command, env: options.env, method: "GET", url: next })) as typeof answer;
    } catch (cause) {
      if (isArmNotFound(cause)) return out;
      throw _fail(what, cause);
    }
    for (const r of answer?.value ?? []) out.push(item(r, _props(r)));
    next = answer?.nextLink || undefined;
  }
  return out;
}

/** The user-assigned identities of a resource group (following nextLink); [] when the group is gone. */
export function listUserAssignedIdentities(options: { subscriptionId: string; resourceGroup: string } & ArmOptions): Promise<UserAssignedIdentity[]> {
  const e = encodeURIComponent;
  return _listAll(options,
    `/subscriptions/${e(options.subscriptionId)}/resourceGroups/${e(options.resourceGroup)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=${MANAGED_IDENTITY_API_VERSION}`,
    `list the managed identities of ${options.subscriptionId}/${options.resourceGroup}`,
    (r, p) => ({ id: String(r.id), name: String(r.name ?? ""), clientId: String(p.clientId ?? ""), principalId: String(p.principalId ?? ""), tenantId: String(p.tenantId ?? "") }));
}

/** Every federated credential of an identity (following nextLink); [] when the identity is gone. */
export function listFederatedCredentials(options: { uamiId: string } & ArmOptions): Promise<FederatedCredential[]> {
  return _listAll(options, `${options.uamiId}/federatedIdentityCredentials?api-version=${MANAGED_IDENTITY_API_VERSION}`, `list the federated credentials of ${options.uamiId}`,
    (f, p) => ({ id: String(f.id), name: String(f.name), issuer: String(p.issuer ?? ""), subject: String(p.subject ?? ""), audiences: Array.isArray(p.audiences) ? p.audiences.map(String) : [] }));
}

/** Deletes an ARM resource by id (a FIC or a UAMI); true when it existed. */
export async function deleteArmResource(options: { id: string } & ArmOptions): Promise<boolean> {
  const rest = await _rest(options);
  try {
    await rest({ command: options.command, env: options.env, method: "DELETE", url: `${options.id}?api-version=${MANAGED_IDENTITY_API_VERSION}` });
    return true;
  } catch (cause) {
    if (isArmNotFound(cause)) return false;
    throw _fail(`delete ${options.id}`, cause);
  }
}
