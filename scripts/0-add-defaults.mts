#!/usr/bin/env node
// Records the publisher's defaults in config.json: subscription and tenant of the signed-in
// az account, the resource group and region the ISV setup will use.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { updateConfig, withPublisher } from "../lib/state/config.mts";
import { configPathIn, resolveDataDir } from "../lib/state/paths.mts";
import { parseResourceGroupName } from "../lib/core/validate.mts";
import { UsageError } from "../lib/core/errors.mts";
import { readSettings } from "../lib/core/settings.mts";
import { lineWriters, renderFields } from "../lib/cli/output.mts";

const DEFAULT_RESOURCE_GROUP = "marketplace-metering-idp-backend";
const DEFAULT_LOCATION = "westeurope";

const USAGE = `Usage: 0-add-defaults.mts [--resource-group NAME] [--location REGION] [options]

Writes publisher.subscriptionId and publisher.aadTenantId from \`az account show\`, plus the
resource group and region for 0-isv-setup, into config.json. Values already in the file are
kept unless given here; other keys are never touched.

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
    const path = configPathIn(resolveDataDir(readSettings()));
    const { config, changed } = await updateConfig({
      path,
      update: (current) => {
        const before = current.publisher.subscriptionId;
        if (before && before.toLowerCase() !== account.id.toLowerCase()) {
          progress(`Note: publisher.subscriptionId changes from ${before} to ${account.id} (az account set --subscription ${before} to keep the old one)`);
        }
        return withPublisher(current, {
          aadTenantId: account.tenantId,
          subscriptionId: account.id,
          resourceGroup: resourceGroup ?? current.publisher.resourceGroup ?? DEFAULT_RESOURCE_GROUP,
          location: location ?? current.publisher.location ?? DEFAULT_LOCATION,
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
