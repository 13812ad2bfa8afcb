// Role grants for a managed identity of the customer's tenant, made by the publisher in the
// managed resource group through templates/1-grant-roles.bicep (ARM needs
// delegatedManagedIdentityResourceId on such a cross-tenant assignment, which only a template or
// raw REST can set). Used for the customer's UAMI (1-connect-customer --grant) and for the
// managed application's system-assigned identity (3-managed-app grant-app-identity).
import { fileURLToPath } from "node:url";
import { ArmError, UsageError } from "../core/errors.mts";
import { changeRecord, type ChangeRecord } from "../audit/records.mts";
import { deployTemplate } from "./deployment.mts";
import type { ArmOptions } from "./managed-apps.mts";

const APP_GRANT_DEPLOYMENT_NAME = "metering-grant-app-identity";
const GRANT_TEMPLATE_FILE = fileURLToPath(new URL("../../templates/1-grant-roles.bicep", import.meta.url));

/** Where roles apply: the managed resource group, or one vault or namespace in it. */
export type GrantScope = { kind: "resourceGroup" } | { kind: "vault"; name: string } | { kind: "namespace"; name: string };

/**
 * `--scope` as a person writes it: `rg`, `vault:<name>` or `namespace:<name>`.
 *
 * @example parseGrantScope("vault:fabrikam-kv") // { kind: "vault", name: "fabrikam-kv" }
 */
export function parseGrantScope(value: string | undefined): GrantScope {
  const v = (value ?? "rg").trim();
  if (/^(rg|resource-?group)$/i.test(v)) return { kind: "resourceGroup" };
  const m = /^(vault|namespace):([A-Za-z0-9-]{1,50})$/i.exec(v);
  if (!m) throw new UsageError(`Cannot use --scope ${JSON.stringify(value)}: expected rg, vault:<Key Vault name> or namespace:<Service Bus namespace name>`);
  return { kind: m[1].toLowerCase() as "vault" | "namespace", name: m[2] };
}

/** `--scope` text of a scope (for messages and commands). Pure. */
export function formatGrantScope(scope: GrantScope): string {
  return scope.kind === "resourceGroup" ? "rg" : `${scope.kind}:${scope.name}`;
}

/** True when ARM id `scope` is `ancestor` or lies beneath it (whole segments, any case). Pure. */
export function scopeWithin(scope: string, ancestor: string): boolean {
  const s = scope.replace(/\/+$/, "").toLowerCase();
  const a = ancestor.replace(/\/+$/, "").toLowerCase();
  return s === a || s.startsWith(a + "/");
}

/** The ARM id of a scope inside a resource group. Pure. */
export function grantScopeId(o: { subscriptionId: string; resourceGroup: string; scope: GrantScope }): string {
  const rg = `/subscriptions/${o.subscriptionId}/resourceGroups/${o.resourceGroup}`;
  if (o.scope.kind === "vault") return `${rg}/providers/Microsoft.KeyVault/vaults/${o.scope.name}`;
  if (o.scope.kind === "namespace") return `${rg}/providers/Microsoft.ServiceBus/namespaces/${o.scope.name}`;
  return rg;
}

/**
 * Deploys the grants: one role assignment per role at the scope, named from the scope, the
 * principal and the role (so a redeployment finds them, and a recreated identity gets new ones).
 * Throws ArmError with one line (failing resource and fix) when ARM refuses.
 */
export async function grantRoles(o: {
  subscriptionId: string;
  resourceGroup: string;
  principalId: string;
  /** The UAMI's resource id, or the resource whose system-assigned identity it is. */
  identityResourceId: string;
  roleDefinitionIds: string[];
  scope: GrantScope;
  deploymentName: string;
  /** The customer's tenant: roles the principal already holds at the scope are left out. */
  tenantId: string;
  /**
   * The tenant the publisher writes from (the managed application's publisherTenantId). Only a
   * write from another tenant than the identity's names it in delegatedManagedIdentityResourceId;
   * Azure does not take the property on a same-tenant assignment. Unknown: treated as cross-tenant.
   */
  publisherTenantId?: string;
} & ArmOptions): Promise<{ scopeId: string; created: string[]; alreadyHeld: string[] }> {
  const scopeId = grantScopeId(o);
  // An assignment made under another name (an older template's) holds the role already; ARM
  // would refuse a second one with RoleAssignmentExists.
  const { listRoleAssignments } = await import("./managed-app.mts");
  const held = (await listRoleAssignments({ ...o, managedResourceGroup: o.resourceGroup, principalId: o.principalId }))
    .filter((r) => r.scope.toLowerCase() === scopeId.toLowerCase())
    .map((r) => r.roleDefinitionId.split("/").pop()!.toLowerCase());
  const wanted = [...new Set(o.roleDefinitionIds.map((id) => id.toLowerCase()))];
  const alreadyHeld = wanted.filter((id) => held.includes(id));
  const missing = wanted.filter((id) => !held.includes(id));
  if (missing.length === 0) return { scopeId, created: [], alreadyHeld };
  const deployment = await deployTemplate({
    ...o,
    templateFile: GRANT_TEMPLATE_FILE,
    parameters: {
      principalId: o.principalId,
      delegatedManagedIdentityResourceId: isCrossTenantWrite(o.publisherTenantId, o.tenantId) ? o.identityResourceId : "",
      roleDefinitionIds: missing,
      scopeKind: o.scope.kind,
      ...(o.scope.kind === "resourceGroup" ? {} : { scopeName: o.scope.name }),
    },
  });
  const outputResources = (deployment as { properties?: { outputResources?: Array<{ id?: string }> } }).properties?.outputResources ?? [];
  return { scopeId, created: outputResources.map((r) => String(r.id)).filter((id) => /\/roleAssignments\//i.test(id)), alreadyHeld };
}

/** Whether a publisher of `publisherTenantId` granting an identity of `identityTenantId` writes across tenants (unknown: yes). Pure. */
export function isCrossTenantWrite(publisherTenantId: string | undefined, identityTenantId: string): boolean {
  return !publisherTenantId || publisherTenantId.toLowerCase() !== identityTenantId.toLowerCase();
}

/**
 * The command that grants `role` to the identity a data-plane call used: the customer's UAMI
 * (1-connect-customer --grant, on the managed resource group) or the managed application's
 * system-assigned identity (3-managed-app grant-app-identity, on the resource). Pure.
 *
 * @example grantCommandFor({ via: "list-tokens", subscriptionId: "s", managedResourceGroup: "m", role: "Key Vault Secrets User", scope: { kind: "vault", name: "kv" } })
 * // '3-managed-app.mts s m grant-app-identity --role "Key Vault Secrets User" --scope vault:kv'
 */
export function grantCommandFor(o: { via: "uami" | "list-tokens"; subscriptionId: string; managedResourceGroup: string; role: string; scope: GrantScope }): string {
  if (o.via === "list-tokens") return `3-managed-app.mts ${o.subscriptionId} ${o.managedResourceGroup} grant-app-identity --role "${o.role}" --scope ${formatGrantScope(o.scope)}`;
  return `1-connect-customer.mts ${o.subscriptionId} ${o.managedResourceGroup} --grant "${o.role}"`;
}

/**
 * Gives the managed application's system-assigned identity roles at a scope in its managed
 * resource group (the publisher's route to a vault through listTokens: the app's identity needs
 * the data role). Writes one change record (`managedApp.grantIdentity`) when it created an assignment or failed.
 */
export async function grantAppIdentity(o: {
  subscriptionId: string;
  managedResourceGroup: string;
  roleDefinitionIds: string[];
  scope: GrantScope;
  recordChange?: (record: ChangeRecord) => Promise<void>;
} & ArmOptions): Promise<{ appId: string; principalId: string; scopeId: string; created: string[]; alreadyHeld: string[] }> {
  const { getManagedAppDetails } = await import("./managed-app.mts");
  const { roleName } = await import("./roles.mts");
  const { recordChange, ...arm } = o;
  const { details } = await getManagedAppDetails({ ...arm, subscriptionId: o.subscriptionId, managedResourceGroup: o.managedResourceGroup });
  const principalId = details.identity?.principalId;
  const tenantId = details.identity?.tenantId;
  if (!principalId || !tenantId || !/SystemAssigned/i.test(details.identity?.type ?? "")) {
    throw new ArmError(`Cannot grant the identity of ${details.id}: the managed application has no system-assigned identity (identity type ${details.identity?.type ?? "None"}); the offer's template must switch it on`);
  }
  if (o.scope.kind === "vault") {
    const { findVaultUrl } = await import("./keyvault-secrets.mts");
    await findVaultUrl({ ...arm, subscriptionId: o.subscriptionId, managedResourceGroup: o.managedResourceGroup, vault: o.scope.name });
  } else if (o.scope.kind === "namespace") {
    const { armRequest } = await import("./arm-resource.mts");
    await armRequest({
      ...arm, method: "GET",
      url: `${grantScopeId({ subscriptionId: o.subscriptionId, resourceGroup: o.managedResourceGroup, scope: o.scope })}?api-version=2021-11-01`,
      what: `Service Bus namespace '${o.scope.name}' in ${o.subscriptionId}/${o.managedResourceGroup}`,
      hint: "check the namespace's name; it must be in the managed resource group",
    });
  }
  const roles = o.roleDefinitionIds.map((id) => roleName(id) ?? id);
  const customer = { subscriptionId: o.subscriptionId, managedResourceGroup: o.managedResourceGroup };
  const scopeId = grantScopeId({ subscriptionId: o.subscriptionId, resourceGroup: o.managedResourceGroup, scope: o.scope });
  try {
    const granted = await grantRoles({
      ...arm, subscriptionId: o.subscriptionId, resourceGroup: o.managedResourceGroup, tenantId, publisherTenantId: details.publisherTenantId, principalId, identityResourceId: details.id,
      roleDefinitionIds: o.roleDefinitionIds, scope: o.scope, deploymentName: APP_GRANT_DEPLOYMENT_NAME,
    });
    // A grant the identity already held changed nothing in Azure: no record.
    if (granted.created.length) await recordChange?.(changeRecord({ operation: "managedApp.grantIdentity", customer, targets: granted.created, outcome: "succeeded", detail: { appId: details.id, principalId, scope: scopeId, roles, alreadyHeld: granted.alreadyHeld } }));
    return { appId: details.id, principalId, ...granted };
  } catch (error) {
    await recordChange?.(changeRecord({
      operation: "managedApp.grantIdentity", customer, targets: [scopeId], outcome: "failed",
      error: { code: (error as { code?: string })?.code, message: String((error as Error)?.message ?? error).split("\n")[0] }, detail: { appId: details.id, principalId, roles },
    }));
    throw error;
  }
}
