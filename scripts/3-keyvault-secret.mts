#!/usr/bin/env node
// Sets, gets and lists secrets in a Key Vault inside a customer's managed resource group, as the
// customer's federated UAMI (or the managed app's own identity via listTokens). No secret on argv.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { lineWriters, renderTable, widthOf } from "../lib/cli/output.mts";

const USAGE = `Usage: 3-keyvault-secret.mts <subscription> <managed-resource-group> <vault> set|get|list|delete [name] [options]

Works with secrets in a Key Vault (RBAC) inside the customer's managed resource group. By default
as the customer's UAMI (workload identity federation: 1-connect-customer --grant "Key Vault Secrets
Officer" gives it the role), or with --via list-tokens as the managed application's
system-assigned identity (a token from the app's listTokens action; 3-managed-app ...
grant-app-identity --role "Key Vault Secrets User" --scope vault:<vault> gives it the role).

Commands:
  set <name>   store a new version; the value comes from stdin (one trailing newline dropped) or --file
  get <name>   print the current value (with --json: value and attributes)
  list         names and attributes of the vault's secrets (never values)
  delete <name> delete the secret, every version (with soft delete, Key Vault keeps it
               recoverable and its name taken until purged)

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group
  vault                    the Key Vault's name (it must be in that resource group)

Options:
  --file PATH          set: read the value from this file (as is)
  --content-type T     set: the secret's contentType
  --via MODE           uami (default) or list-tokens
  --json               print the result as JSON
  -v, --verbose        show details on errors
  -h, --help           show this help

A secret value is never taken from the command line (shell history, process lists) and never
written to the audit log, which records each request and answer with the value's length only.
The vault's address comes from ARM (az rest); the data-plane calls use the customer's identity.

Exit codes: 0 ok, 1 failed (e.g. a missing role: the message names it), 2 usage error, unknown
vault or secret, customer not connected
`;

const OPTIONS = {
  file: { type: "string" },
  "content-type": { type: "string" },
  via: { type: "string" },
  json: { type: "boolean" },
} as const;
const COMMANDS = ["set", "get", "list", "delete"];

const { out, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({
    args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group", "vault", "command"], optionalPositionals: ["name", "value"],
    run: async ({ values, positionals }) => {
      const subscriptionId = parseSubscriptionId(positionals[0]);
      const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
      const vault = positionals[2];
      const command = positionals[3];
      if (!/^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/.test(vault)) throw new UsageError(`Cannot use vault ${JSON.stringify(vault)}: expected a Key Vault name (3-24 letters, digits and hyphens)`);
      if (!COMMANDS.includes(command)) throw new UsageError(`Cannot run command ${JSON.stringify(command)}: expected set, get, list or delete`);
      if (positionals[5] !== undefined) {
        throw new UsageError("Cannot take a secret value from the command line (it would stay in shell history and process lists): pipe it on stdin or use --file PATH");
      }
      const { parseSecretName } = await import("../lib/azure/keyvault-secrets.mts");
      const name = command === "list" ? undefined : parseSecretName(positionals[4]);
      if (command === "list" && positionals[4] !== undefined) throw new UsageError("Cannot run list: it takes no secret name");
      if (command !== "set" && (values.file !== undefined || values["content-type"] !== undefined)) throw new UsageError(`Cannot run ${command}: --file and --content-type belong to set`);
      const via = String(values.via ?? "uami") as "uami" | "list-tokens";
      if (via !== "uami" && via !== "list-tokens") throw new UsageError(`Cannot use --via ${JSON.stringify(via)}: expected uami or list-tokens`);

      let value: string | undefined;
      if (command === "set") {
        const { readPayload } = await import("../lib/cli/input.mts");
        const bytes = await readPayload({
          path: values.file as string | undefined, what: "secret value", stdin: process.stdin,
          howTo: "pipe it on stdin (printf %s \"$VALUE\" | …) or use --file PATH",
        });
        // A value piped by echo ends in a newline that is not part of it; a file is taken as it is.
        value = new TextDecoder().decode(bytes);
        if (values.file === undefined) value = value.replace(/\r?\n$/, "");
        if (value === "") throw new UsageError("Cannot set an empty secret: no value on stdin or in the file");
      }

      const { usePublisher } = await import("../lib/publisher/context.mts");
      await usePublisher({}, async (publisher) => {
        const ref = { subscriptionId, managedResourceGroup };
        publisher.customer(ref);
        progress(`Reading Key Vault ${vault} of ${subscriptionId}/${managedResourceGroup}`);
        const kv = await import("../lib/azure/keyvault-secrets.mts");
        const vaultUrl = await kv.findVaultUrl({ ...ref, vault });
        const { credential, tokenClaims, who } = await publisher.dataPlaneIdentity(ref, { scope: kv.KEYVAULT_SCOPE, via, audience: "https://vault.azure.net", onProgress: progress });
        // A 403 names the command that gives this identity (UAMI or the app's own) the missing role.
        const { grantCommandFor } = await import("../lib/azure/role-grants.mts");
        const grant = (role: string) => grantCommandFor({ via, ...ref, role, scope: { kind: "vault", name: vault } });
        // Every call of this client is written to the audit log, the value by its length only.
        const client = await publisher.restClient({ credential, scope: kv.KEYVAULT_SCOPE, record: { customer: ref, tokenClaims, via } });
        if (command === "set") {
          const { info } = await kv.setSecret({ client, vaultUrl, name: name!, value: value!, contentType: values["content-type"] as string | undefined, who, grant });
          if (values.json) out(JSON.stringify(info, null, 2));
          else out(`Stored ${info.name} version ${info.version ?? "-"} in ${vault}`);
        } else if (command === "get") {
          const { info, value: secret } = await kv.getSecret({ client, vaultUrl, name: name!, who, grant });
          if (values.json) out(JSON.stringify({ ...info, value: secret }, null, 2));
          else out(secret);
        } else if (command === "delete") {
          const { info } = await kv.deleteSecret({ client, vaultUrl, name: name!, who, grant });
          if (values.json) out(JSON.stringify(info, null, 2));
          else out(`Deleted ${info.name} from ${vault}${info.recoveryId ? ` (recoverable until ${info.scheduledPurgeDate ?? "purged"})` : ""}`);
        } else {
          const { secrets } = await kv.listSecrets({ client, vaultUrl, who, grant });
          if (values.json) out(JSON.stringify(secrets, null, 2));
          else {
            const rows = secrets.map((x) => [x.name, x.enabled === false ? "disabled" : "enabled", x.updated ?? "-", x.contentType ?? ""]);
            const columns = [{ header: "NAME", fit: "middle" as const }, "STATE", "UPDATED", { header: "CONTENT TYPE", fit: "wrap" as const }];
            for (const line of renderTable(rows, { columns, width: widthOf(process.stdout), empty: `No secrets in ${vault}.` })) out(line);
          }
        }
      });
      return EXIT_OK;
    },
  });
}

process.exitCode = await main(process.argv.slice(2));
