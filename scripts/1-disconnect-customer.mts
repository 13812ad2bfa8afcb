#!/usr/bin/env node
// Disconnects a customer: deletes the federated credential and the UAMI from the managed
// resource group and the customer from config.json; the audit log stays (plus one record).
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { PendingEventsError } from "../lib/core/errors.mts";
import type { DisconnectPlan } from "../lib/customers/offboard.mts";
import { lineWriters, renderFields, widthOf } from "../lib/cli/output.mts";

const USAGE = `Usage: 1-disconnect-customer.mts <subscription> <managed-resource-group> [options]

Removes what 1-connect-customer put in place: the UAMI's role assignments in the managed
resource group (its --grant roles, on the group or a resource in it), the federated
credential(s) of the customer's UAMI, the UAMI itself, and the customer's entry in config.json.
Each change in Azure is an audit record (customer.revokeGrants, customer.deleteIdentity). The audit log is kept as it is; a "customer.disconnect" record is appended.
Refuses while usage events of this customer are pending in the audit log (sent without a
recorded answer, within the API's 24-hour window): settle them with 2-emit-meter.mts --resend
first, or use --force.

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group

Options:
  --dry-run      show what would be deleted; delete nothing
  --force        disconnect even with pending usage events
  --json         print the plan (or the result) as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR  state directory; \`az\` must be on PATH and signed in as a user the
                     managed application authorizes

Exit codes: 0 disconnected (or a dry run), 1 failed or refused (pending events),
            2 usage error or customer not connected
`;

const OPTIONS = { "dry-run": { type: "boolean" }, force: { type: "boolean" }, json: { type: "boolean" } } as const;

const { out, progress } = lineWriters(process);

function describePlan(plan: DisconnectPlan, verb: string) {
  // Names, not ARM ids, so that the plan fits 80 columns (--json has the ids).
  const uami = plan.uamiId.split("/").pop()!;
  const fields: Array<[string, string]> = plan.roleAssignments.map((r) => [`${verb} role assignment`, `${r.roleName ?? r.roleDefinitionId.split("/").pop()} of ${uami} on ${r.scope === `/subscriptions/${plan.subscriptionId}/resourceGroups/${plan.managedResourceGroup}` ? "the managed resource group" : r.scope.split("/").slice(-2).join(" ")} (${r.name})`]);
  fields.push(...plan.federatedCredentials.map((f) => [`${verb} federated credential`, `${f.id.split("/").pop()} of ${uami} (issuer ${f.issuer}, subject ${JSON.stringify(f.subject)})`] as [string, string]));
  fields.push(plan.uamiExists ? [`${verb} managed identity`, `${uami} in ${plan.subscriptionId}/${plan.managedResourceGroup} (clientId ${plan.customer.uamiClientId})`] : ["(already gone)", `managed identity ${plan.uamiId}`]);
  fields.push([`${verb} config entry`, `customers.${plan.subscriptionId}.${plan.managedResourceGroup}`], ["kept", "audit log"]);
  for (const line of renderFields(fields, { width: widthOf(process.stdout) })) out(line);
}

function pendingText(plan: DisconnectPlan): string {
  return plan.pendingEvents.map((p) => {
    const fate = p.status === "Pending" ? `sent ${p.time}, no answer recorded` : `answered ${p.status} at ${p.time}`;
    return `${p.event.quantity} ${p.event.dimension} for ${p.event.effectiveStartTime} (${fate})`;
  }).join("; ");
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group"], run: async ({ values, positionals }) => {
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({ stage: "any" }, async (publisher) => {
    const { configPath } = publisher.paths;
    const config = publisher.config;
    const { planDisconnect, executeDisconnect } = await import("../lib/customers/offboard.mts");
    progress(`Reading what ${subscriptionId}/${managedResourceGroup} has`);
    const plan = await planDisconnect({ config, configPath, ledger: await publisher.ledger(), subscriptionId, managedResourceGroup });
    const pending = plan.pendingEvents.length;

    if (values["dry-run"]) {
      if (values.json) out(JSON.stringify({ dryRun: true, ...plan, pendingEvents: plan.pendingEvents.map((p) => ({ key: p.key, ...p.event, status: p.status, time: p.time })) }, null, 2));
      else describePlan(plan, "would delete");
      if (pending && !values.force) progress(`Without --force this would be refused: ${pending} usage event(s) pending: ${pendingText(plan)}`);
      return EXIT_OK;
    }
    if (pending && !values.force) {
      throw new PendingEventsError(
        `Cannot disconnect ${plan.subscriptionId}/${plan.managedResourceGroup}: ${pending} usage event(s) were sent without a recorded answer: ${pendingText(plan)}; settle them with 2-emit-meter.mts --resend (a duplicate is harmless), or use --force`,
      );
    }

    const result = await executeDisconnect(plan, { updateConfig: publisher.updateConfig, audit: await publisher.audit(), onProgress: progress });
    const who = { subscriptionId: plan.subscriptionId, managedResourceGroup: plan.managedResourceGroup };
    progress(`Disconnected ${who.subscriptionId}/${who.managedResourceGroup}; removed from ${configPath}, audit log kept`);
    if (values.json) out(JSON.stringify({ ...who, uamiId: plan.uamiId, ...result }, null, 2));
    else describePlan(plan, "deleted");
    return EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
