// Connecting a customer: deploy templates/1-connect-customer.bicep (a UAMI with a federated
// credential trusting the ISV's issuer) into the managed resource group, and build the
// customer's config entry from the deployment outputs and the managed application.
import { fileURLToPath } from "node:url";
import { MeteringError } from "../core/errors.mts";
import type { CustomerConfig, MeteringConfig } from "../state/config.mts";
import { changeRecord, type ChangeRecord } from "../audit/records.mts";

const CONNECT_TEMPLATE_FILE = fileURLToPath(new URL("../../templates/1-connect-customer.bicep", import.meta.url));
const CONNECT_DEPLOYMENT_NAME = "metering-connect-customer";
const GRANT_DEPLOYMENT_NAME = "metering-connect-customer-grants";
export const FEDERATION_AUDIENCE = "api://AzureADTokenExchange";
export const UAMI_NAME = "metering-submission-uami";
const REQUIRED_OUTPUTS = ["uamiId", "uamiName", "uamiClientId", "uamiPrincipalId", "tenantId"];

/** The subject every connection of this publisher uses (the bash tool's convention). */
export function defaultSubject(config: MeteringConfig): string {
  return `metering-submission-via-uami from ${config.publisher.aadTenantId}`;
}

/**
 * Deploys the UAMI and its federated credential into the MRG and returns the customer's
 * config entry (not saved). A re-connect keeps the subject and UAMI name of `previous`, so a
 * running setup keeps matching.
 */
export async function connectCustomer(options: {
  config: MeteringConfig;
  subscriptionId: string;
  managedResourceGroup: string;
  previous?: Partial<CustomerConfig>;
  /** Role definition ids to grant the UAMI on the MRG (through the template); earlier grants are kept. */
  grantRoleDefinitionIds?: string[];
  onProgress?: (text: string) => void;
  /** Receives one change record per change made in Azure (the identity, the grants), failed ones too. */
  record?: (record: ChangeRecord) => Promise<void>;
}): Promise<CustomerConfig> {
  const { subscriptionId, managedResourceGroup, previous } = options;
  // Incremental deployments leave earlier grants in place; listing them again keeps the record whole.
  const previousGrants = Array.isArray(previous?.grantedRoleDefinitionIds) ? previous.grantedRoleDefinitionIds as string[] : [];
  const grantRoleDefinitionIds = [...new Set([...previousGrants, ...(options.grantRoleDefinitionIds ?? [])])];
  const newGrants = (options.grantRoleDefinitionIds ?? []).length;
  const idp = options.config.publisher.idp!;
  const subject = previous?.subject ?? defaultSubject(options.config);
  const uamiName = previous?.uamiName ?? UAMI_NAME;
  const { getBillableManagedApp } = await import("../azure/managed-apps.mts");
  const az = await import("../azure/az.mts");
  options.onProgress?.(`Reading the managed application of ${subscriptionId}/${managedResourceGroup}`);
  const app = await getBillableManagedApp({ subscriptionId, managedResourceGroup });

  options.onProgress?.(`Deploying ${uamiName} with a federated credential for ${idp.issuer}${newGrants ? `, then ${newGrants} role grant(s)` : ""}`);
  const customer = { subscriptionId, managedResourceGroup };
  const record = options.record ?? (async () => {});
  const expectedUamiId = `/subscriptions/${subscriptionId}/resourceGroups/${managedResourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${uamiName}`;
  const failed = async (operation: string, targets: string[], error: unknown, detail: Record<string, unknown>) => {
    await record(changeRecord({ operation, customer, targets, outcome: "failed", error: { code: (error as MeteringError)?.code, message: String((error as Error)?.message ?? error).split("\n")[0] }, detail }));
  };
  const { deployTemplate } = await import("../azure/deployment.mts");
  let deployment: Record<string, unknown>;
  try {
    deployment = await deployTemplate({
      subscriptionId,
      resourceGroup: managedResourceGroup,
      deploymentName: CONNECT_DEPLOYMENT_NAME,
      templateFile: CONNECT_TEMPLATE_FILE,
      parameters: { issuer: idp.issuer, subject, audience: FEDERATION_AUDIENCE, uamiName },
    });
  } catch (error) {
    await failed("customer.connect", [expectedUamiId], error, { deployment: CONNECT_DEPLOYMENT_NAME, issuer: idp.issuer, subject });
    throw error;
  }
  const outputs = az.deploymentOutputs(deployment);
  const output = (name: string) => az.getDeploymentOutput(outputs, name) as string;
  const missing = REQUIRED_OUTPUTS.filter((name) => typeof output(name) !== "string" || output(name) === "");
  if (missing.length > 0) {
    throw new MeteringError(`Cannot use deployment ${CONNECT_DEPLOYMENT_NAME}: outputs ${missing.join(", ")} are missing (is ${CONNECT_TEMPLATE_FILE} up to date?)`);
  }
  await record(changeRecord({
    operation: "customer.connect", customer, targets: [output("uamiId"), `${output("uamiId")}/federatedIdentityCredentials/fed`], outcome: "succeeded",
    detail: { deployment: CONNECT_DEPLOYMENT_NAME, issuer: idp.issuer, subject, audience: FEDERATION_AUDIENCE, uamiClientId: output("uamiClientId"), uamiPrincipalId: output("uamiPrincipalId") },
  }));
  if (grantRoleDefinitionIds.length > 0) {
    const { grantRoles } = await import("../azure/role-grants.mts");
    const { roleName } = await import("../azure/roles.mts");
    const roles = grantRoleDefinitionIds.map((id) => roleName(id) ?? id);
    options.onProgress?.(`Granting ${uamiName} ${roles.join(", ")} on ${managedResourceGroup}`);
    try {
      const granted = await grantRoles({
        subscriptionId, resourceGroup: managedResourceGroup, tenantId: output("tenantId"), publisherTenantId: app.publisherTenantId,
        principalId: output("uamiPrincipalId"), identityResourceId: output("uamiId"),
        roleDefinitionIds: grantRoleDefinitionIds, scope: { kind: "resourceGroup" }, deploymentName: GRANT_DEPLOYMENT_NAME,
      });
      if (granted.created.length) await record(changeRecord({
        operation: "customer.grant", customer, targets: granted.created, outcome: "succeeded",
        detail: { deployment: GRANT_DEPLOYMENT_NAME, principalId: output("uamiPrincipalId"), scope: granted.scopeId, roles, alreadyHeld: granted.alreadyHeld },
      }));
    } catch (error) {
      await failed("customer.grant", [managedResourceGroup], error, { deployment: GRANT_DEPLOYMENT_NAME, principalId: output("uamiPrincipalId"), roles });
      throw error;
    }
  }
  return {
    ...previous,
    uamiClientId: output("uamiClientId"),
    tenantId: output("tenantId"),
    subject,
    audience: FEDERATION_AUDIENCE,
    uamiName: output("uamiName"),
    billing: { resourceId: app.resourceUsageId, resourceUri: app.id },
    planName: app.planName,
    uamiId: output("uamiId"),
    uamiPrincipalId: output("uamiPrincipalId"),
    ...(grantRoleDefinitionIds.length ? { grantedRoleDefinitionIds: grantRoleDefinitionIds } : {}),
    // 2-emit-meter retries Entra's propagation errors for a while after this time.
    connectedAt: new Date().toISOString(),
  };
}
