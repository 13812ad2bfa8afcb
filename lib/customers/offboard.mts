// Offboarding a customer: what goes (the federated credentials, the UAMI, the config entry) and
// what stays (the audit log, which only gains a record of the disconnect). Planning reads ARM
// and the audit log's ledger (the same one 2-emit-meter uses); executing deletes in ARM, then
// removes the config entry and records the disconnect.
import { updateConfig, withoutCustomer, type CustomerConfig, type MeteringConfig } from "../state/config.mts";
import { findCustomer, isSameCustomer } from "../state/customers.mts";
import { disconnectRecord } from "../audit/records.mts";
import type { AuditWriter } from "../audit/log.mts";
import { CustomerNotConnectedError } from "../core/errors.mts";
import { deleteArmResource, getUserAssignedIdentity, listFederatedCredentials, userAssignedIdentityId, type FederatedCredential } from "./uami.mts";
import type { ArmOptions } from "../azure/managed-apps.mts";
import type { LedgerEntry } from "../metering/ledger.mts";
import { loadLedger } from "../metering/submission.mts";
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
  auditPath: string;
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
  const now = options.now ?? Date.now();
  const { ledger } = await loadLedger({ auditPath: options.auditPath, now });
  const pendingEvents = ledger.unresolved().filter((e) => isSameCustomer(e.customer, found) && now - Date.parse(e.event.effectiveStartTime) < USAGE_WINDOW_MS);
  return { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup, customer, uamiId, uamiExists: !!uami, federatedCredentials, pendingEvents };
}

/**
 * Deletes the plan's federated credentials, then the identity (safe to run again: 404 = already
 * gone), then removes the customer from config.json and appends a `customer.disconnect` record.
 */
export async function executeDisconnect(plan: DisconnectPlan, options: ArmOptions & {
  configPath: string;
  audit: AuditWriter;
  onProgress?: (text: string) => void;
}): Promise<{ deletedCredentials: string[]; deletedIdentity: boolean }> {
  const log = options.onProgress ?? (() => {});
  const deletedCredentials: string[] = [];
  for (const fic of plan.federatedCredentials) {
    log(`Deleting federated credential ${fic.id}`);
    if (await deleteArmResource({ ...options, id: fic.id })) deletedCredentials.push(fic.id);
  }
  let deletedIdentity = false;
  if (plan.uamiExists) {
    log(`Deleting managed identity ${plan.uamiId}`);
    deletedIdentity = await deleteArmResource({ ...options, id: plan.uamiId });
  }
  const who = { subscriptionId: plan.subscriptionId, managedResourceGroup: plan.managedResourceGroup };
  await updateConfig({ path: options.configPath, update: (current) => withoutCustomer(current, who) });
  await options.audit.append(disconnectRecord({
    customer: who, uamiId: plan.uamiId, uamiClientId: plan.customer.uamiClientId, deletedCredentials, deletedIdentity,
    ...(plan.pendingEvents.length ? { forcedWithPendingEvents: plan.pendingEvents.map((p) => p.key) } : {}),
  }));
  return { deletedCredentials, deletedIdentity };
}
