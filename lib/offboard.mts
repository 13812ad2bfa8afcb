// Offboarding a customer: what goes (the federated credentials, the UAMI, the config entry) and
// what stays (the audit log, which only gains a record of the disconnect). Planning reads ARM
// and the audit log; executing deletes in ARM. Config is the caller's to update afterwards.
import { findPendingIntents, readAuditLog, type AuditRecord } from "./audit.mts";
import { findCustomer, type CustomerConfig, type MeteringConfig } from "./config.mts";
import { CustomerNotConnectedError } from "./errors.mts";
import { deleteArmResource, getUserAssignedIdentity, listFederatedCredentials, userAssignedIdentityId, type FederatedCredential } from "./identity.mts";
import type { ArmOptions } from "./arm.mts";

export interface DisconnectPlan {
  /** Keys as config.json spells them. */
  subscriptionId: string;
  managedResourceGroup: string;
  customer: CustomerConfig;
  uamiId: string;
  /** False when the identity is already gone (then only the config entry goes). */
  uamiExists: boolean;
  federatedCredentials: FederatedCredential[];
  /** Usage intents of this customer without a recorded answer. */
  pendingIntents: AuditRecord[];
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
  const { records } = await readAuditLog({ path: options.auditPath });
  const lower = (s: string | undefined) => (s ?? "").toLowerCase();
  const pendingIntents = findPendingIntents(records).filter((r) =>
    lower(r.customer?.subscriptionId) === lower(found.subscriptionId) && lower(r.customer?.managedResourceGroup) === lower(found.managedResourceGroup)
  );
  return { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup, customer, uamiId, uamiExists: !!uami, federatedCredentials, pendingIntents };
}

/** Deletes the plan's federated credentials, then the identity. Safe to run again (404 = already gone). */
export async function executeDisconnect(plan: DisconnectPlan, options: ArmOptions & { onProgress?: (text: string) => void } = {}): Promise<{ deletedCredentials: string[]; deletedIdentity: boolean }> {
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
  return { deletedCredentials, deletedIdentity };
}
