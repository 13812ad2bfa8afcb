#!/usr/bin/env node
// Connects a customer: deploys a UAMI with a federated credential trusting the ISV's issuer
// into the managed resource group (templates/1-connect-customer.bicep), records it in config.
import { fileURLToPath } from "node:url";
import { EXIT_OK, runCommand } from "../lib/cli.mts";
import { findCustomer, loadConfig, updateConfig, withCustomer, type CustomerConfig } from "../lib/config.mts";
import { configPathIn, resolveDataDir } from "../lib/paths.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/validate.mts";
import { MeteringError } from "../lib/errors.mts";
import { BUILT_IN_ROLES, parseRole, roleName } from "../lib/roles.mts";

const TEMPLATE_FILE = fileURLToPath(new URL("../templates/1-connect-customer.bicep", import.meta.url));
const DEPLOYMENT_NAME = "metering-connect-customer";
const AUDIENCE = "api://AzureADTokenExchange";
const UAMI_NAME = "metering-submission-uami";
const REQUIRED_OUTPUTS = ["uamiId", "uamiName", "uamiClientId", "uamiPrincipalId", "tenantId"];

const USAGE = `Usage: 1-connect-customer.mts <subscription> <managed-resource-group> [options]

Deploys templates/1-connect-customer.bicep into the customer's managed resource group: a
user-assigned managed identity "${UAMI_NAME}" with a federated credential for the ISV's
issuer (subject "metering-submission-via-uami from <ISV tenant>", audience ${AUDIENCE}).
Reads the managed application's resourceUsageId, id and plan, and records everything in
config.json. An already connected customer is left alone unless --force.

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group

Options:
  --grant ROLE   also give the UAMI this role on the managed resource group, through the same
                 template (repeatable; by name or role definition id): ${Object.keys(BUILT_IN_ROLES).join(", ")}.
                 Deploys again when already connected; earlier grants are kept
  --force        deploy and record again even if already connected
  --json         print the customer's config entry as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR  state directory; \`az\` must be on PATH and signed in as a user the
                     managed application authorizes (plan authorizations)

Exit codes: 0 connected (or already connected), 1 failed, 2 usage error or ISV setup missing
`;

const OPTIONS = { force: { type: "boolean" }, json: { type: "boolean" }, grant: { type: "string", multiple: true } } as const;

const out = (text: string) => process.stdout.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`${text}\n`);

function printCustomer(customer: CustomerConfig, json: boolean) {
  if (json) out(JSON.stringify(customer, null, 2));
  else {
    out(`uamiName      ${customer.uamiName}`);
    out(`uamiClientId  ${customer.uamiClientId}`);
    out(`tenantId      ${customer.tenantId}`);
    out(`subject       ${customer.subject}`);
    out(`audience      ${customer.audience}`);
    out(`planName      ${customer.planName}`);
    out(`resourceId    ${customer.billing.resourceId}`);
    out(`resourceUri   ${customer.billing.resourceUri}`);
    const grants = Array.isArray(customer.grantedRoleDefinitionIds) ? customer.grantedRoleDefinitionIds as string[] : [];
    if (grants.length > 0) out(`grants        ${grants.map((id) => roleName(id) ?? id).join(", ")} (on the managed resource group)`);
  }
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group"], run: async ({ values, positionals }) => {
    const json = values.json === true;
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const requested = ((values.grant as unknown as string[] | undefined) ?? []).map(parseRole);
    const path = configPathIn(resolveDataDir());
    const config = await loadConfig({ path, stage: "idp" });
    const existing = findCustomer(config, { subscriptionId, managedResourceGroup });
    if (existing && !values.force && requested.length === 0) {
      progress(`${subscriptionId}/${managedResourceGroup} is already connected (use --force to deploy and record it again)`);
      printCustomer(existing.customer as CustomerConfig, json);
      return EXIT_OK;
    }
    const idp = config.publisher.idp!;
    const previous = existing?.customer as Partial<CustomerConfig> | undefined;
    // Keep the subject a re-connect used before, so a running setup keeps matching.
    const subject = previous?.subject ?? `metering-submission-via-uami from ${config.publisher.aadTenantId}`;
    const uamiName = previous?.uamiName ?? UAMI_NAME;
    // Incremental deployments leave earlier grants in place; listing them again keeps the record whole.
    const previousGrants = Array.isArray(previous?.grantedRoleDefinitionIds) ? previous.grantedRoleDefinitionIds as string[] : [];
    const grantRoleDefinitionIds = [...new Set([...previousGrants, ...requested.map((r) => r.id)])];

    const { getBillableManagedApp } = await import("../lib/arm.mts");
    const az = await import("../lib/az.mts");
    progress(`Reading the managed application of ${subscriptionId}/${managedResourceGroup}`);
    const app = await getBillableManagedApp({ subscriptionId, managedResourceGroup });

    progress(`Deploying ${uamiName} with a federated credential for ${idp.issuer}${requested.length ? `, granting ${requested.map((r) => r.name).join(", ")}` : ""}`);
    const deployment = await az.deploymentGroupCreate({
      subscriptionId,
      resourceGroup: managedResourceGroup,
      name: DEPLOYMENT_NAME,
      templateFile: TEMPLATE_FILE,
      parameters: { issuer: idp.issuer, subject, audience: AUDIENCE, uamiName, ...(grantRoleDefinitionIds.length ? { grantRoleDefinitionIds } : {}) },
    });
    const outputs = az.deploymentOutputs(deployment);
    const output = (name: string) => az.getDeploymentOutput(outputs, name) as string;
    const missing = REQUIRED_OUTPUTS.filter((name) => typeof output(name) !== "string" || output(name) === "");
    if (missing.length > 0) {
      throw new MeteringError(`Cannot use deployment ${DEPLOYMENT_NAME}: outputs ${missing.join(", ")} are missing (is ${TEMPLATE_FILE} up to date?)`);
    }

    const customer: CustomerConfig = {
      ...previous,
      uamiClientId: output("uamiClientId"),
      tenantId: output("tenantId"),
      subject,
      audience: AUDIENCE,
      uamiName: output("uamiName"),
      billing: { resourceId: app.resourceUsageId, resourceUri: app.id },
      planName: app.planName,
      uamiId: output("uamiId"),
      uamiPrincipalId: output("uamiPrincipalId"),
      ...(grantRoleDefinitionIds.length ? { grantedRoleDefinitionIds: grantRoleDefinitionIds } : {}),
      // 2-emit-meter retries Entra's "no matching credential" for a while after this time.
      connectedAt: new Date().toISOString(),
    };
    await updateConfig({ path, update: (current) => withCustomer(current, { subscriptionId, managedResourceGroup, customer }) });
    progress(`Connected ${subscriptionId}/${managedResourceGroup}; recorded in ${path} (Entra may take a few minutes to accept the new credential)`);
    printCustomer(customer, json);
    return EXIT_OK;
  } });
}

process.exitCode = await main(process.argv.slice(2));
