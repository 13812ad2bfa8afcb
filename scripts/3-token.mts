#!/usr/bin/env node
// Gets a token for any resource as a connected customer's UAMI (workload identity federation,
// no secret) and shows its claims and expiry; --raw prints only the token, for piping.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { parseResourceGroupName, parseSubscriptionId } from "../lib/core/validate.mts";
import { formatTokenSummary, scopeForResource, summarizeToken, WELL_KNOWN_SCOPES } from "../lib/identity/token-info.mts";

const USAGE = `Usage: 3-token.mts <subscription> <managed-resource-group> <resource-or-scope> [options]

Signs in as the customer's UAMI in the managed resource group (the identity 1-connect-customer
created) and gets an access token for a resource in the customer's tenant. Prints the token's
decoded claims and its expiry; the token itself only with --raw.

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group
  resource-or-scope        a resource URI (https://vault.azure.net), an app id, a .../.default
                           scope, or one of: ${Object.keys(WELL_KNOWN_SCOPES).join(", ")}

Options:
  --raw          print only the access token (for piping: 3-token ... --raw | ...); nothing else on stdout
  --json         print the claims and expiry as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment: as 2-emit-meter (METERING_DATA_DIR, AZURE_AUTHORITY_HOST, ...); no az needed.
The token is never written to disk; the audit log records its claims.

Exit codes: 0 token obtained, 1 sign-in failed, 2 usage error or customer not connected
`;

const OPTIONS = { raw: { type: "boolean" }, json: { type: "boolean" } } as const;

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: ["subscription", "managed-resource-group", "resource-or-scope"], run: async ({ values, positionals }) => {
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const scope = scopeForResource(positionals[2]);
    const { usePublisher } = await import("../lib/publisher/context.mts");
    const token = await usePublisher({}, (publisher) => {
      const customer = publisher.customer({ subscriptionId, managedResourceGroup });
      process.stderr.write(`Signing in as UAMI ${customer.uamiClientId} in tenant ${customer.tenantId} for ${scope}\n`);
      return publisher.session({ subscriptionId, managedResourceGroup }, customer).issueToken(scope);
    });
    const summary = summarizeToken(token.token, { expiresOnTimestamp: token.expiresOnTimestamp });
    if (values.raw) process.stdout.write(`${token.token}\n`);
    else if (values.json) process.stdout.write(`${JSON.stringify({ scope, ...summary }, null, 2)}\n`);
    else process.stdout.write(`${formatTokenSummary(summary)}\n`);
    return EXIT_OK;
  } });
}

process.exitCode = await main(process.argv.slice(2));
