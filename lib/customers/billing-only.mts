// A customer billed only through the publisher app (central metering): its billing ids and plan
// from the managed application, recorded without deploying anything into its managed resource
// group. Acting inside its tenant (tokens, Key Vault, Service Bus) needs a UAMI: connect it in full.
import type { CustomerConfig } from "../state/config.mts";

/**
 * The config entry of a billing-only customer (not saved): `billingOnly: true`, the managed app's
 * resourceUsageId and id as `billing`, its plan. Reads ARM through az; writes nothing in Azure.
 */
export async function billingOnlyCustomer(options: {
  subscriptionId: string;
  managedResourceGroup: string;
  onProgress?: (text: string) => void;
}): Promise<CustomerConfig> {
  const { getBillableManagedApp } = await import("../azure/managed-apps.mts");
  options.onProgress?.(`Reading the managed application of ${options.subscriptionId}/${options.managedResourceGroup}`);
  const app = await getBillableManagedApp(options);
  // No UAMI fields: customerProblems accepts their absence for billingOnly entries only.
  return {
    billingOnly: true,
    billing: { resourceId: app.resourceUsageId, resourceUri: app.id },
    planName: app.planName,
    connectedAt: new Date().toISOString(),
  } as unknown as CustomerConfig;
}
