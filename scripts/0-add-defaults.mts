#!/usr/bin/env node
// Records the publisher's defaults in config.json: subscription and tenant of the signed-in
// az account, the resource group and region the ISV setup will use.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { updateConfig, withPublisher } from "../lib/state/config.mts";
import { configPathIn, resolveDataDir } from "../lib/state/paths.mts";
import { isDomainName, parseResourceGroupName } from "../lib/core/validate.mts";
import { UsageError } from "../lib/core/errors.mts";
import { readSettings } from "../lib/core/settings.mts";
import { lineWriters, renderFields } from "../lib/cli/output.mts";

const DEFAULT_RESOURCE_GROUP = "marketplace-metering-idp-backend";
const DEFAULT_LOCATION = "westeurope";

const USAGE = `Usage: 0-add-defaults.mts [--resource-group NAME] [--location REGION] [options]

Writes publisher.subscriptionId and publisher.aadTenantId from \`az account show\`, plus the
resource group and region for 0-isv-setup, into config.json. Values already in the file are
kept unless given here (an empty string counts as missing: the default is filled in); a tenant
named by a verified domain that is the signed-in tenant stays named so. Other keys are never touched.

Options:
  --resource-group NAME  resource group for the issuer (default: existing value, else ${DEFAULT_RESOURCE_GROUP})
  --location REGION      Azure region (default: existing value, else ${DEFAULT_LOCATION})
  --json                 print the publisher section as JSON
  -v, --verbose          show details on errors
  -h, --help             show this help

Environment:
  METERING_DATA_DIR      state directory; default ./metering-data, or $HOME/clouddrive/metering-data in Cloud Shell

Exit codes: 0 ok, 1 failed (az), 2 usage error
`;

const OPTIONS = {
  "resource-group": { type: "string" },
  location: { type: "string" },
  json: { type: "boolean" },
} as const;

const { out, progress } = lineWriters(process);

/** A config value, or undefined when it is absent or only whitespace. */
function _given(value: string | undefined): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    const resourceGroup = values["resource-group"] === undefined
      ? undefined
      : parseResourceGroupName(values["resource-group"] as string, "--resource-group");
    const location = values.location as string | undefined;
    if (location !== undefined && !/^[a-z0-9]+$/i.test(location)) {
      throw new UsageError(`Cannot use --location ${JSON.stringify(location)}: expected a region name such as westeurope`);
    }

    const { accountShow } = await import("../lib/azure/az.mts");
    const account = await accountShow();
    const settings = readSettings();
    const path = configPathIn(resolveDataDir(settings));
    // A tenant named by its verified domain (the bash tool's files) stays so when it is the
    // signed-in tenant: new customers' subjects then read as the ones the bash tool connected.
    const { loadConfig } = await import("../lib/state/config.mts");
    const named = (await loadConfig({ path, allowMissing: true })).publisher.aadTenantId;
    let tenant = account.tenantId;
    if (isDomainName(named)) {
      const { resolveTenantId } = await import("../lib/identity/tenant.mts");
      const id = await resolveTenantId({ tenant: named, authorityHost: settings.authorityHost }).catch((e: Error) => {
        progress(`Note: ${e.message}`);
        return undefined;
      });
      if (id === account.tenantId.toLowerCase()) tenant = named;
      else if (id) progress(`Note: publisher.aadTenantId changes from ${named} (tenant ${id}) to ${account.tenantId}, the tenant az is signed in to`);
    }
    const { config, changed } = await updateConfig({
      path,
      update: (current) => {
        const before = current.publisher.subscriptionId;
        if (before && before.toLowerCase() !== account.id.toLowerCase()) {
          progress(`Note: publisher.subscriptionId changes from ${before} to ${account.id} (az account set --subscription ${before} to keep the old one)`);
        }
        // An empty string (the bash tool's template has "resourceGroup": "") is a missing value.
        return withPublisher(current, {
          aadTenantId: tenant,
          subscriptionId: account.id,
          resourceGroup: resourceGroup ?? _given(current.publisher.resourceGroup) ?? DEFAULT_RESOURCE_GROUP,
          location: location ?? _given(current.publisher.location) ?? DEFAULT_LOCATION,
        });
      },
    });
    progress(changed ? `Wrote ${path}` : `${path} already up to date`);
    const { aadTenantId, subscriptionId, resourceGroup: rg, location: loc } = config.publisher;
    if (values.json) out(JSON.stringify({ aadTenantId, subscriptionId, resourceGroup: rg, location: loc }, null, 2));
    else {
      const fields: Array<[string, string]> = [
        ["publisher.aadTenantId", String(aadTenantId)],
        ["publisher.subscriptionId", String(subscriptionId)],
        ["publisher.resourceGroup", String(rg)],
        ["publisher.location", String(loc)],
      ];
      for (const line of renderFields(fields)) out(line);
    }
    return EXIT_OK;
  } });
}

process.exitCode = await main(process.argv.slice(2));
