// ARM calls against a test sandbox as a given principal, over ARM's real REST API: for tests that
// set up resources a real customer's managed application would have (a Key Vault or a Service Bus
// namespace in the MRG) and for role assignments.
import { randomUUID } from "node:crypto";
import type { SandboxHandle } from "../../sandbox/main.mts";

export interface Principal {
  tenantId: string;
  objectId: string;
  idtyp?: "app" | "user";
}

export const ARM_AUDIENCE = "https://management.azure.com/";

/** An access token of `who` for `audience`, from the sandbox's Entra (in-process). */
export async function tokenFor(sb: SandboxHandle, who: Principal, audience: string): Promise<string> {
  return (await sb.tokens.issue({
    tenantId: who.tenantId, audience, objectId: who.objectId, idtyp: who.idtyp ?? "user", lifetimeS: 3600, grant: "test",
    ...(who.idtyp === "app" ? { appId: who.objectId } : {}),
  })).token;
}

/** The seeded ISV user (Owner of every customer's MRG through the plan's authorizations). */
export function isvUser(sb: SandboxHandle): Principal {
  return { tenantId: sb.world.isv.tenantId, objectId: sb.world.isv.userObjectId };
}

/** One ARM request; `path` is ARM-relative and carries its api-version. */
export async function arm(sb: SandboxHandle, method: string, path: string, body?: unknown, who: Principal = isvUser(sb)) {
  const res = await fetch(sb.endpoints.arm + path, {
    method,
    headers: { authorization: `Bearer ${await tokenFor(sb, who, ARM_AUDIENCE)}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** PUT that must succeed; returns the resource. */
export async function armPut(sb: SandboxHandle, path: string, body: unknown, who?: Principal): Promise<any> {
  const r = await arm(sb, "PUT", path, body, who);
  if (r.status !== 200 && r.status !== 201) throw new Error(`PUT ${path}: HTTP ${r.status} ${r.text}`);
  return r.json;
}

/**
 * Assigns a built-in role (by role definition GUID) to a principal at `scope`, as the ISV user;
 * a user of the sandbox's directory as User, any other principal as ServicePrincipal (ARM refuses
 * a type the directory contradicts).
 */
export async function grantRole(sb: SandboxHandle, scope: string, principalId: string, roleId: string): Promise<void> {
  const principalType = [...sb.state.users.values()].some((u) => u.objectId.toLowerCase() === principalId.toLowerCase()) ? "User" : "ServicePrincipal";
  await armPut(sb, `${scope}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`, {
    properties: { roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${roleId}`, principalId, principalType },
  });
}

export const SERVICEBUS_API = "api-version=2021-11-01";
export const KEYVAULT_API = "api-version=2023-07-01";

/** A Service Bus namespace with queues in a resource group; returns its ARM id and serviceBusEndpoint. */
export async function createServiceBus(sb: SandboxHandle, rgId: string, name: string, queues: Array<string | { name: string; properties?: Record<string, unknown> }>) {
  const ns = await armPut(sb, `${rgId}/providers/Microsoft.ServiceBus/namespaces/${name}?${SERVICEBUS_API}`, { location: "westeurope", sku: { name: "Standard" } });
  for (const q of queues) {
    const spec = typeof q === "string" ? { name: q } : q;
    await armPut(sb, `${ns.id}/queues/${spec.name}?${SERVICEBUS_API}`, { properties: spec.properties ?? {} });
  }
  return { id: ns.id as string, endpoint: ns.properties.serviceBusEndpoint as string };
}

/** An RBAC Key Vault in a resource group of `tenantId`; returns its ARM id and vaultUri. */
export async function createVault(sb: SandboxHandle, rgId: string, name: string, tenantId: string) {
  const v = await armPut(sb, `${rgId}/providers/Microsoft.KeyVault/vaults/${name}?${KEYVAULT_API}`, {
    location: "westeurope",
    properties: { tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: true },
  });
  return { id: v.id as string, uri: v.properties.vaultUri as string };
}
