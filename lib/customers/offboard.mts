// Offboarding a customer: what goes (the federated credentials, the UAMI, the config entry) and
// what stays (the audit log, which only gains a record of the disconnect). Planning reads ARM
// and the audit log's ledger (the same one 2-emit-meter uses); executing deletes in ARM, then
// removes the config entry and records the disconnect.
import { withoutCustomer, type CustomerConfig, type MeteringConfig } from "../state/config.mts";
import { findCustomer, isSameCustomer } from "../state/customers.mts";
import { changeRecord, disconnectRecord } from "../audit/records.mts";
import type { AuditWriter } from "../audit/log.mts";
import { CustomerNotConnectedError } from "../core/errors.mts";
import { deleteArmResource, getUserAssignedIdentity, listFederatedCredentials, userAssignedIdentityId, type FederatedCredential } from "./uami.mts";
import type { ArmOptions } from "../azure/managed-apps.mts";
import { deleteRoleAssignment, listRoleAssignments, type RoleAssignmentRow } from "../azure/managed-app.mts";
import { scopeWithin } from "../azure/role-grants.mts";
import type { LedgerEntry } from "../metering/ledger.mts";
import { loadLedger } from "../metering/submission.mts";
import type { LedgerStore } from "../audit/store.mts";
import { USAGE_WINDOW_MS } from "../metering/time.mts";

export interface DisconnectPlan {
  /** Keys as config.json spells them. */
  subscriptionId: string;
  managedResourceGroup: string;
  customer: CustomerConfig;
  uamiId: string;
  /** False when the identity is already gone (then only the config entry goes). */
  uamiExists: boolean;
  federatedCredentials: FederatedCredential[];
  /**
   * The identity's role assignments in the managed resource group (at it or beneath it: a vault,
   * a namespace). They go with the identity: ARM keeps an assignment whose principal is deleted,
   * and a later connect would meet it under the same name.
   */
  roleAssignments: RoleAssignmentRow[];
  /**
   * Usage events of this customer whose fate is unknown (sent without a recorded answer, or
   * answered with a batch item Error) and that `2-emit-meter --resend` can still settle: their
   * hour is inside the API's 24-hour window.
   */
  pendingEvents: LedgerEntry[];
}

/**
 * Finds what disconnecting a customer removes. Throws CustomerNotConnectedError when the
 * customer is not in config.
 */
export async function planDisconnect(options: {
  config: MeteringConfig;
  configPath: string;
  ledger: LedgerStore;
  subscriptionId: string;
  managedResourceGroup: string;
  now?: number;
} & ArmOptions): Promise<DisconnectPlan> {
  const found = findCustomer(options.config, options);
  if (!found) {
    throw new CustomerNotConnectedError(`Cannot disconnect ${options.subscriptionId}/${options.managedResourceGroup}: it is not in ${options.configPath}`);
  }
  const customer = found.customer as CustomerConfig;
  const uamiId = typeof customer.uamiId === "string" && customer.uamiId
    ? customer.uamiId
    : userAssignedIdentityId({ subscriptionId: found.subscriptionId, resourceGroup: found.managedResourceGroup, name: customer.uamiName ?? "metering-submission-uami" });
  const uami = await getUserAssignedIdentity({ ...options, id: uamiId });
  const federatedCredentials = uami ? await listFederatedCredentials({ ...options, uamiId }) : [];
  const principalId = uami?.principalId || (typeof customer.uamiPrincipalId === "string" ? customer.uamiPrincipalId : "");
  const mrgId = `/subscriptions/${found.subscriptionId}/resourceGroups/${found.managedResourceGroup}`;
  const roleAssignments = principalId && customer.tenantId
    ? (await listRoleAssignments({ ...options, subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup, tenantId: customer.tenantId, principalId }))
      .filter((r) => r.principalId.toLowerCase() === principalId.toLowerCase() && scopeWithin(r.scope, mrgId))
    : [];
  const now = options.now ?? Date.now();
  const { ledger } = await loadLedger({ store: options.ledger, now });
  const pendingEvents = ledger.unresolved().filter((e) => isSameCustomer(e.customer, found) && now - Date.parse(e.event.effectiveStartTime) < USAGE_WINDOW_MS);
  return { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup, customer, uamiId, uamiExists: !!uami, federatedCredentials, roleAssignments, pendingEvents };
}

/**
 * Deletes the identity's role assignments, the plan's federated credentials, then the identity
 * (safe to run again: 404 = already gone; each step a change record), then removes the customer
 * from config.json and appends a `customer.disconnect` record.
 */
export async function executeDisconnect(plan: DisconnectPlan, options: ArmOptions & {
  /** config.json's read-modify-write (the publisher context's, which keeps the ledger's copy current). */
  updateConfig: (update: (config: MeteringConfig) => MeteringConfig) => Promise<unknown>;
  audit: AuditWriter;
  onProgress?: (text: string) => void;
}): Promise<{ deletedCredentials: string[]; deletedIdentity: boolean; deletedRoleAssignments: string[] }> {
  const log = options.onProgress ?? (() => {});
  const who = { subscriptionId: plan.subscriptionId, managedResourceGroup: plan.managedResourceGroup };
  // One change record per step in Azure, written when its outcome is known (a failure too).
  const step = async <T,>(operation: string, done: string[], planned: string[], run: () => Promise<T>): Promise<T> => {
    try {
      const result = await run();
      if (done.length) await options.audit.append(changeRecord({ operation, customer: who, targets: [...done], outcome: "succeeded" }));
      return result;
    } catch (error) {
      await options.audit.append(changeRecord({
        operation, customer: who, targets: planned, outcome: "failed",
        error: { code: (error as { code?: string })?.code, message: String((error as Error)?.message ?? error).split("\n")[0] },
        ...(done.length ? { detail: { completed: [...done] } } : {}),
      }));
      throw error;
    }
  };
  const deletedRoleAssignments: string[] = [];
  await step("customer.revokeGrants", deletedRoleAssignments, plan.roleAssignments.map((r) => r.id), async () => {
    for (const ra of plan.roleAssignments) {
      log(`Deleting role assignment ${ra.name} (${ra.roleName ?? ra.roleDefinitionId.split("/").pop()} on ${ra.scope})`);
      if (await deleteRoleAssignment({ ...options, ...who, tenantId: plan.customer.tenantId, assignment: ra.id })) deletedRoleAssignments.push(ra.id);
    }
  });
  const deletedCredentials: string[] = [];
  let deletedIdentity = false;
  const removed: string[] = [];
  await step("customer.deleteIdentity", removed, [...plan.federatedCredentials.map((f) => f.id), ...(plan.uamiExists ? [plan.uamiId] : [])], async () => {
    for (const fic of plan.federatedCredentials) {
      log(`Deleting federated credential ${fic.id}`);
      if (await deleteArmResource({ ...options, id: fic.id })) {
        deletedCredentials.push(fic.id);
        removed.push(fic.id);
      }
    }
    if (plan.uamiExists) {
      log(`Deleting managed identity ${plan.uamiId}`);
      deletedIdentity = await deleteArmResource({ ...options, id: plan.uamiId });
      if (deletedIdentity) removed.push(plan.uamiId);
    }
  });
  await options.updateConfig((current) => withoutCustomer(current, who));
  await options.audit.append(disconnectRecord({
    customer: who, uamiId: plan.uamiId, uamiClientId: plan.customer.uamiClientId, deletedCredentials, deletedIdentity,
    ...(plan.pendingEvents.length ? { forcedWithPendingEvents: plan.pendingEvents.map((p) => p.key) } : {}),
  }));
  return { deletedCredentials, deletedIdentity, deletedRoleAssignments };
}
