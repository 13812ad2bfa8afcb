#!/usr/bin/env node
// Connects a customer: deploys a UAMI with a federated credential trusting the ISV's issuer
// into the managed resource group (templates/1-connect-customer.bicep), records it in config;
// --adopt records the UAMI an offer template made at purchase, deploying nothing.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { findCustomer, withCustomer, type CustomerConfig } from "../lib/state/config.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { BUILT_IN_ROLES, parseRole, roleName } from "../lib/azure/roles.mts";
import { FEDERATION_AUDIENCE as AUDIENCE, UAMI_NAME } from "../lib/customers/connect.mts";
import { lineWriters, renderFields, widthOf } from "../lib/cli/output.mts";

const USAGE = `Usage: 1-connect-customer.mts <subscription> <managed-resource-group> [options]

Deploys templates/1-connect-customer.bicep into the customer's managed resource group: a
user-assigned managed identity "${UAMI_NAME}" with a federated credential for the ISV's
issuer (subject "metering-submission-via-uami from <ISV tenant>", audience ${AUDIENCE}).
Reads the managed application's resourceUsageId, id and plan, and records everything in
config.json. An already connected customer is left alone unless --force. Each change made in
Azure (the identity, each grant) is an audit record (customer.connect, customer.grant); an
adoption is one too (customer.adopt), though it changes nothing in Azure.

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group

Options:
  --grant ROLE   also give the UAMI this role on the managed resource group, through
                 templates/1-grant-roles.bicep (repeatable; by name or role definition id):
                 ${Object.keys(BUILT_IN_ROLES).join(", ")}.
                 Deploys again when already connected; earlier grants are kept
  --billing-only record only the billing ids and plan, deploy nothing: the customer is
                 billed as the publisher app (0-publisher-app; 2-emit-meter --as
                 publisher-app) and cannot be acted on in its tenant (3-* scripts)
  --adopt        the offer template connected it at purchase (templates/offer/): read its
                 UAMI and federated credential, check issuer, subject and audience match
                 this ISV exactly (else exit 2, nothing written), record it; deploys nothing
  --force        deploy and record again even if already connected
  --json         print the customer's config entry as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR  state directory; \`az\` must be on PATH and signed in as a user the
                     managed application authorizes (plan authorizations)

Exit codes: 0 connected (or already connected), 1 failed, 2 usage error or ISV setup missing
`;

const OPTIONS = { force: { type: "boolean" }, json: { type: "boolean" }, grant: { type: "string", multiple: true }, "billing-only": { type: "boolean" }, adopt: { type: "boolean" } } as const;

const { out, progress } = lineWriters(process);

function printCustomer(customer: CustomerConfig, json: boolean) {
  if (json) out(JSON.stringify(customer, null, 2));
  else {
    const grants = Array.isArray(customer.grantedRoleDefinitionIds) ? customer.grantedRoleDefinitionIds as string[] : [];
    const fields: Array<[string, string]> = [
      ["uamiName", customer.uamiName],
      ["uamiClientId", customer.uamiClientId],
      ["tenantId", customer.tenantId],
      ["subject", customer.subject],
      ["audience", customer.audience],
      ["planName", customer.planName],
      ["resourceId", customer.billing.resourceId],
      // The app's full ARM id (a person copies it; --json has it too), on a line of its own.
      ["resourceUri", customer.billing.resourceUri],
    ];
    if (grants.length > 0) fields.push(["grants", `${grants.map((id) => roleName(id) ?? id).join(", ")} (on the managed resource group)`]);
    for (const line of renderFields(fields, { width: widthOf(process.stdout) })) out(line);
  }
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group"], run: async ({ values, positionals }) => {
    const json = values.json === true;
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const requested = ((values.grant as unknown as string[] | undefined) ?? []).map(parseRole);
    if (values["billing-only"] && requested.length > 0) throw new UsageError("Cannot use --grant with --billing-only: a billing-only customer has no identity to grant a role to");
    if (values.adopt && requested.length > 0) throw new UsageError("Cannot use --grant with --adopt: --adopt deploys nothing; grant roles in the offer template, or connect with --grant afterwards");
    if (values.adopt && values["billing-only"]) throw new UsageError("Cannot use --billing-only with --adopt: --adopt records the offer template's UAMI, --billing-only records none");
    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({ stage: "idp" }, async (publisher) => {
      const path = publisher.paths.configPath;
      const config = publisher.config;
      const existing = findCustomer(config, { subscriptionId, managedResourceGroup });
      const record = async (customer: CustomerConfig) => {
        const { copied } = await publisher.updateConfig((current) => withCustomer(current, { subscriptionId, managedResourceGroup, customer }));
        if (copied) progress("  and in the copy of config.json beside the ledger (what the job's replicas read)");
      };
      if (existing && !values.force && requested.length === 0) {
        progress(`${subscriptionId}/${managedResourceGroup} is already connected (use --force to deploy and record it again)`);
        printCustomer(existing.customer as CustomerConfig, json);
        return EXIT_OK;
      }
      if (values["billing-only"]) {
        const { billingOnlyCustomer } = await import("../lib/customers/billing-only.mts");
        const customer = await billingOnlyCustomer({ subscriptionId, managedResourceGroup, onProgress: progress });
        await record(customer);
        progress(`Recorded ${subscriptionId}/${managedResourceGroup} for billing only (nothing deployed); bill it with 2-emit-meter --as publisher-app`);
        if (json) out(JSON.stringify(customer, null, 2));
        else for (const line of renderFields([["billing", "only (no UAMI)"], ["planName", customer.planName], ["resourceId", customer.billing.resourceId], ["resourceUri", customer.billing.resourceUri]], { width: widthOf(process.stdout) })) out(line);
        return EXIT_OK;
      }
      if (values.adopt) {
        const { adoptCustomer } = await import("../lib/customers/adopt.mts");
        const audit = await publisher.audit();
        const customer = await adoptCustomer({ config, subscriptionId, managedResourceGroup, onProgress: progress, recordChange: (r) => audit.append(r) });
        await record(customer);
        progress(`Adopted ${subscriptionId}/${managedResourceGroup}: the offer template's ${customer.uamiName} trusts this ISV (nothing deployed)`);
        progress(`  recorded in ${path}`);
        printCustomer(customer, json);
        return EXIT_OK;
      }
      const { connectCustomer } = await import("../lib/customers/connect.mts");
      const audit = await publisher.audit();
      const customer = await connectCustomer({
        config, subscriptionId, managedResourceGroup,
        previous: existing?.customer as Partial<CustomerConfig> | undefined,
        grantRoleDefinitionIds: requested.map((r) => r.id),
        onProgress: progress,
        // Every change in Azure (the identity, the grants) is an audit record, failed ones too.
        record: (r) => audit.append(r),
      });
      await record(customer);
      progress(`Connected ${subscriptionId}/${managedResourceGroup}`);
      progress(`  recorded in ${path}; Entra may take a few minutes to accept the new credential`);
      printCustomer(customer, json);
      return EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
