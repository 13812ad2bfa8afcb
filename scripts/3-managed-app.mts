#!/usr/bin/env node
// Acts on a customer's managed application as the publisher, through ARM: show it, refresh its
// permissions, list tokens of its identities, and list or delete role assignments in its MRG.
import { assertOptionsBelong, EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { ArmError, UsageError } from "../lib/core/errors.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { lineWriters, renderFields, renderTable, widthOf } from "../lib/cli/output.mts";

const COMMANDS = ["show", "refresh-permissions", "list-tokens", "role-assignments", "grant-app-identity"];

const USAGE = `Usage: 3-managed-app.mts <subscription> <managed-resource-group> <command> [options]

Publisher-side operations on the managed application behind a managed resource group, through
ARM (az rest, signed in as a user the plan's authorizations cover). Every request and answer
goes to the audit log (tokens replaced by their claims).

Commands:
  show                  plan, billing details, provisioning state, identity and authorizations
  refresh-permissions   POST refreshPermissions (ARM finishes it asynchronously)
  list-tokens           POST listTokens: tokens of the app's system-assigned identity, or of the
                        user-assigned identities given with --identity; prints claims and expiry
  role-assignments      role assignments at the managed resource group, read in the customer's
                        tenant (&tenantId=); --delete ID removes one (exit 1 when there is none)
  grant-app-identity    give the managed application's system-assigned identity --role at --scope
                        in the managed resource group (templates/1-grant-roles.bicep), e.g. Key
                        Vault Secrets User on a vault, so that --via list-tokens can use it

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group

Options:
  --audience A      list-tokens: the tokens' audience (default https://management.azure.com/)
  --identity ID     list-tokens: a user-assigned identity resource id (repeatable)
  --raw             list-tokens: print only the tokens, one per line (the only way one is printed)
  --delete ID       role-assignments: delete this assignment (its GUID name or full id)
  --role ROLE       grant-app-identity: a built-in role by name or role definition id (repeatable)
  --scope S         grant-app-identity: rg (default), vault:<name> or namespace:<name>
  --json            print the result as JSON
  -v, --verbose     show details on errors
  -h, --help        show this help

Environment: METERING_DATA_DIR (audit log); az on PATH, signed in.

Exit codes: 0 ok, 1 failed (also: --delete found nothing), 2 usage error or unknown managed resource group / assignment
`;

const OPTIONS = {
  audience: { type: "string" },
  identity: { type: "string", multiple: true },
  raw: { type: "boolean" },
  delete: { type: "string" },
  role: { type: "string", multiple: true },
  scope: { type: "string" },
  json: { type: "boolean" },
} as const;

const { out, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group", "command"], run: async ({ values, positionals }) => {
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const command = positionals[2];
    if (!COMMANDS.includes(command)) throw new UsageError(`Cannot run command ${JSON.stringify(command)}: expected one of ${COMMANDS.join(", ")}`);
    const app = await import("../lib/azure/managed-app.mts");
    const identities = ((values.identity as unknown as string[] | undefined) ?? []).map(app.parseUserAssignedIdentityId);
    assertOptionsBelong(values, command, { "list-tokens": ["audience", "identity", "raw"], "role-assignments": ["delete"], "grant-app-identity": ["role", "scope"] });
    const grants = await import("../lib/azure/role-grants.mts");
    const { parseRole } = await import("../lib/azure/roles.mts");
    const roles = ((values.role as unknown as string[] | undefined) ?? []).map(parseRole);
    const scope = grants.parseGrantScope(values.scope as string | undefined);
    if (command === "grant-app-identity" && roles.length === 0) throw new UsageError("Cannot run grant-app-identity: name at least one --role (e.g. --role \"Key Vault Secrets User\" --scope vault:<name>)");
    if (values.raw && values.json) throw new UsageError(`Cannot run ${command}: --raw and --json exclude each other`);
    if (values.audience !== undefined && !/^\S+$/.test(String(values.audience))) throw new UsageError(`Cannot use --audience ${JSON.stringify(values.audience)}: expected a resource URI or app id`);
    if (values.delete !== undefined) app.parseRoleAssignmentRef(String(values.delete));

    const who = { subscriptionId, managedResourceGroup };
    const { usePublisher } = await import("../lib/publisher/context.mts");
    // Works before the customer is connected: config.json is read only for its tenant and UAMI.
    return await usePublisher({ stage: "any", allowMissingConfig: true }, async (publisher) => {
      const arm = publisher.arm({ customer: who });
      const json = values.json === true;

      progress(`Reading the managed application of ${subscriptionId}/${managedResourceGroup}`);
      if (command === "grant-app-identity") {
        progress(`Granting the managed application's identity ${roles.map((r) => r.name).join(", ")} on ${grants.formatGrantScope(scope)}`);
        const audit = await publisher.audit();
        const result = await grants.grantAppIdentity({ ...who, ...arm, roleDefinitionIds: roles.map((r) => r.id), scope, recordChange: (r) => audit.append(r) });
        if (json) out(JSON.stringify(result, null, 2));
        else {
          const { roleName } = await import("../lib/azure/roles.mts");
          const held = result.alreadyHeld.map((id) => roleName(id) ?? id);
          const granted = roles.map((r) => r.name).filter((n) => !held.includes(n));
          if (granted.length) out(`Granted ${granted.join(", ")} to the managed application's identity (principal ${result.principalId}) on ${result.scopeId}`);
          if (held.length) out(`Already held by the managed application's identity on ${result.scopeId}: ${held.join(", ")} (left as they are)`);
          if (granted.length) progress("New assignments can take a few minutes to apply");
        }
        return EXIT_OK;
      }
      const { details } = await app.getManagedAppDetails({ ...who, ...arm });

      if (command === "show") {
        for (const line of json ? [JSON.stringify(details, null, 2)] : renderFields(app.managedAppFields(details), { width: widthOf(process.stdout) })) out(line);
        return EXIT_OK;
      }

      if (command === "refresh-permissions") {
        await app.refreshPermissions({ appId: details.id, ...arm });
        const after = await app.getManagedAppDetails(who);
        if (json) out(JSON.stringify({ refreshed: details.id, provisioningState: after.details.provisioningState }, null, 2));
        else out(`refreshPermissions accepted for ${details.id}; provisioningState ${after.details.provisioningState ?? "-"}`);
        return EXIT_OK;
      }

      if (command === "list-tokens") {
        const { summarizeToken, formatTokenSummary } = await import("../lib/identity/token-info.mts");
        const result = await app.listManagedAppTokens({ appId: details.id, audience: values.audience as string | undefined, userAssignedIdentities: identities, ...arm });
        if (values.raw) {
          for (const t of result.tokens) out(t.token);
          return EXIT_OK;
        }
        const rows = result.tokens.map((t) => ({ resourceId: t.resourceId, audience: t.audience, ...summarizeToken(t.token, { expiresOnTimestamp: t.expiresOnTimestamp }) }));
        if (json) out(JSON.stringify(rows, null, 2));
        else out(rows.map((r, i) => `token ${i + 1} of ${rows.length}: ${r.resourceId ?? "?"}\n${formatTokenSummary(r)}`).join("\n\n"));
        return EXIT_OK;
      }

      // role-assignments
      const { findCustomer } = await import("../lib/state/customers.mts");
      const connected = findCustomer(publisher.config, who)?.customer as { tenantId?: string; uamiPrincipalId?: string } | undefined;
      const tenantId = connected?.tenantId ?? details.identity?.tenantId;
      if (!tenantId) throw new UsageError(`Cannot tell the customer's tenant of ${details.id}: connect the customer first (1-connect-customer)`);
      if (values.delete !== undefined) {
        const existed = await app.deleteRoleAssignment({ ...who, tenantId, assignment: String(values.delete), ...arm });
        if (!existed) throw new ArmError(`Cannot delete role assignment ${values.delete}: found no role assignment ${values.delete} at ${subscriptionId}/${managedResourceGroup} (list them with role-assignments)`);
        if (json) out(JSON.stringify({ deleted: values.delete }, null, 2));
        else out(`Deleted role assignment ${values.delete}`);
        return EXIT_OK;
      }
      const rows = await app.listRoleAssignments({ ...who, tenantId, ...arm });
      if (json) out(JSON.stringify(rows, null, 2));
      else {
        // Names in full (--delete takes them); principals and scopes shortened to fit; * marks the UAMI.
        const uami = connected?.uamiPrincipalId?.toLowerCase();
        const table = rows.map((r) => [r.name, r.roleName ?? r.roleDefinitionId.split("/").pop()!, `${r.principalId.toLowerCase() === uami ? "* " : ""}${r.principalId}`, r.scope]);
        const columns = ["NAME", { header: "ROLE", fit: "wrap" as const, minWidth: 12 }, { header: "PRINCIPAL", fit: "middle" as const, minWidth: 13 }, { header: "SCOPE", fit: "middle" as const, minWidth: 10 }];
        if (table.some((r) => r[2].startsWith("* "))) table.push(["", "", "", ""], ["* the metering UAMI", "", "", ""]);
        for (const line of renderTable(table, { columns, width: widthOf(process.stdout), empty: "No role assignments at this managed resource group." })) out(line);
      }
      return EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
