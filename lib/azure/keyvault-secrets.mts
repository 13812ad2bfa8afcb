// Secrets in a Key Vault inside a customer's managed resource group, over Key Vault's REST API
// (docs/azure-behaviour.md §4.1) with a token the caller provides (the federated UAMI, or the managed app's identity
// from listTokens): set, get, list. Statuses become typed errors; a 403 names the role to grant.
import { AccessDeniedError, DataPlaneError, ResourceNotFoundError, UsageError } from "../core/errors.mts";
import type { RestClient, RestResponse } from "./rest.mts";
import type { ArmOptions } from "./managed-apps.mts";

const KEYVAULT_SECRETS_API_VERSION = "7.4";
export const KEYVAULT_SCOPE = "https://vault.azure.net/.default";
/** Key Vault object names: 1-127 letters, digits and hyphens. */
const SECRET_NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
/** Key Vault's limit on a secret value (25 KB). */
const MAX_SECRET_BYTES = 25 * 1024;

export interface SecretInfo {
  name: string;
  id: string;
  version?: string;
  contentType?: string;
  enabled?: boolean;
  updated?: string;
}

/** Checks a secret name argument. */
export function parseSecretName(value: string | undefined): string {
  const v = value ?? "";
  if (!SECRET_NAME_RE.test(v)) throw new UsageError(`Cannot use secret name ${JSON.stringify(v)}: expected 1-127 letters, digits and hyphens`);
  return v;
}

function _info(o: { id?: string; contentType?: string; attributes?: { enabled?: boolean; updated?: number } }): SecretInfo {
  const parts = new URL(String(o.id)).pathname.split("/").filter(Boolean);
  return {
    name: parts[1],
    id: String(o.id),
    ...(parts[2] ? { version: parts[2] } : {}),
    ...(o.contentType ? { contentType: o.contentType } : {}),
    ...(o.attributes?.enabled !== undefined ? { enabled: o.attributes.enabled } : {}),
    ...(o.attributes?.updated !== undefined ? { updated: new Date(o.attributes.updated * 1000).toISOString() } : {}),
  };
}

/**
 * Who made a data-plane call, for messages: `who` names the identity, `grant(role)` is the
 * command that gives that identity the role (lib/azure/role-grants.mts grantCommandFor).
 */
export interface CallerIdentity {
  who: string;
  grant?: (role: string) => string;
}

/** Key Vault's answer as an error a person can act on. `role` is the one the operation needs. */
function keyVaultSecretError(res: RestResponse, options: { action: string; vaultUrl: string; name?: string; role: string } & CallerIdentity): Error {
  const e = res.json<{ error?: { code?: string; message?: string } }>()?.error;
  const first = String(e?.message ?? res.text()).split(/\r?\n/)[0];
  const what = `${options.action} ${options.name ? `secret '${options.name}' in ` : ""}${options.vaultUrl}`;
  if (res.status === 403) {
    const grant = options.grant?.(options.role) ?? `1-connect-customer.mts --grant "${options.role}"`;
    return new AccessDeniedError(`Cannot ${what}: forbidden (${e?.code ?? "Forbidden"}). ${options.who} needs the '${options.role}' role on the vault; grant it to that identity with ${grant} (new assignments take a few minutes)`, {
      service: "keyvault", role: options.role, httpStatus: 403, detail: e?.message,
    });
  }
  if (res.status === 404 && e?.code === "SecretNotFound") {
    return new ResourceNotFoundError(`Cannot ${what}: no such secret (${first})`);
  }
  if (res.status === 401) {
    return new DataPlaneError(`Cannot ${what}: the vault refused the token (${first}); the vault must belong to the customer's tenant`, { service: "keyvault", httpStatus: 401, detail: e?.message });
  }
  return new DataPlaneError(`Cannot ${what}: HTTP ${res.status} ${e?.code ?? ""} ${first}`.trim(), { service: "keyvault", httpStatus: res.status, detail: res.text() });
}

const _url = (vaultUrl: string, path: string) => `${vaultUrl.replace(/\/$/, "")}/${path}${path.includes("?") ? "&" : "?"}api-version=${KEYVAULT_SECRETS_API_VERSION}`;

/** Sets a secret (a new version); the value never appears in what is returned. */
export async function setSecret(options: { client: RestClient; vaultUrl: string; name: string; value: string; contentType?: string } & CallerIdentity): Promise<{ info: SecretInfo; response: RestResponse }> {
  if (new TextEncoder().encode(options.value).length > MAX_SECRET_BYTES) throw new UsageError(`Cannot set secret '${options.name}': the value is larger than Key Vault's ${MAX_SECRET_BYTES / 1024} KB`);
  const res = await options.client.send({
    method: "PUT",
    url: _url(options.vaultUrl, `secrets/${encodeURIComponent(options.name)}`),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ value: options.value, ...(options.contentType ? { contentType: options.contentType } : {}) }),
    audit: { operation: "keyvault.setSecret" },
  });
  if (res.status !== 200) throw keyVaultSecretError(res, { action: "set", vaultUrl: options.vaultUrl, name: options.name, role: "Key Vault Secrets Officer", who: options.who, grant: options.grant });
  return { info: _info(res.json()!), response: res };
}

/** Reads a secret's current (or given) version, with its value. */
export async function getSecret(options: { client: RestClient; vaultUrl: string; name: string; version?: string } & CallerIdentity): Promise<{ info: SecretInfo; value: string; response: RestResponse }> {
  const res = await options.client.send({
    method: "GET",
    url: _url(options.vaultUrl, `secrets/${encodeURIComponent(options.name)}${options.version ? `/${options.version}` : ""}`),
    audit: { operation: "keyvault.getSecret" },
  });
  if (res.status !== 200) throw keyVaultSecretError(res, { action: "get", vaultUrl: options.vaultUrl, name: options.name, role: "Key Vault Secrets User", who: options.who, grant: options.grant });
  const body = res.json<{ value?: string; id?: string; contentType?: string; attributes?: { enabled?: boolean; updated?: number } }>()!;
  return { info: _info(body), value: String(body.value ?? ""), response: res };
}

/** Lists the secrets (names and attributes, never values), following nextLink. */
export async function listSecrets(options: { client: RestClient; vaultUrl: string; maxPages?: number } & CallerIdentity): Promise<{ secrets: SecretInfo[] }> {
  const secrets: SecretInfo[] = [];
  let url: string | null = _url(options.vaultUrl, "secrets?maxresults=25");
  for (let page = 0; url && page < (options.maxPages ?? 1000); page++) {
    const res = await options.client.send({ method: "GET", url, audit: { operation: "keyvault.listSecrets" } });
    if (res.status !== 200) throw keyVaultSecretError(res, { action: "list secrets of", vaultUrl: options.vaultUrl, role: "Key Vault Secrets User", who: options.who, grant: options.grant });
    const body = res.json<{ value?: unknown[]; nextLink?: string | null }>() ?? {};
    for (const item of body.value ?? []) secrets.push(_info(item as never));
    url = body.nextLink ?? null;
  }
  return { secrets };
}

/** Deletes a secret (every version; with soft delete the name stays taken until purged). */
export async function deleteSecret(options: { client: RestClient; vaultUrl: string; name: string } & CallerIdentity): Promise<{ info: SecretInfo & { recoveryId?: string; scheduledPurgeDate?: string }; response: RestResponse }> {
  const res = await options.client.send({
    method: "DELETE",
    url: _url(options.vaultUrl, `secrets/${encodeURIComponent(options.name)}`),
    audit: { operation: "keyvault.deleteSecret" },
  });
  if (res.status !== 200) throw keyVaultSecretError(res, { action: "delete", vaultUrl: options.vaultUrl, name: options.name, role: "Key Vault Secrets Officer", who: options.who, grant: options.grant });
  const body = res.json<{ id?: string; recoveryId?: string; scheduledPurgeDate?: number; attributes?: { enabled?: boolean; updated?: number } }>()!;
  return {
    info: {
      ..._info(body),
      ...(body.recoveryId ? { recoveryId: body.recoveryId } : {}),
      ...(body.scheduledPurgeDate ? { scheduledPurgeDate: new Date(body.scheduledPurgeDate * 1000).toISOString() } : {}),
    },
    response: res,
  };
}

const VAULT_API_VERSION = "2023-07-01";

/** A Key Vault's data-plane URL, from ARM (az rest): the vault must be in the managed resource group. */
export async function findVaultUrl(o: { subscriptionId: string; managedResourceGroup: string; vault: string } & ArmOptions): Promise<string> {
  const { armRequest } = await import("./arm-resource.mts");
  const where = `${o.subscriptionId}/${o.managedResourceGroup}`;
  const vault = await armRequest({
    ...o,
    method: "GET",
    url: `/subscriptions/${o.subscriptionId}/resourceGroups/${o.managedResourceGroup}/providers/Microsoft.KeyVault/vaults/${o.vault}?api-version=${VAULT_API_VERSION}`,
    what: `Key Vault '${o.vault}' in ${where}`,
    hint: "check the vault's name; it must be in the managed resource group",
  }) as { properties?: { vaultUri?: string } };
  const url = vault?.properties?.vaultUri;
  if (!url) throw new UsageError(`Cannot use Key Vault '${o.vault}': ARM reports no vaultUri`);
  return url;
}
