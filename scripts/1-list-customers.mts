#!/usr/bin/env node
// Lists the managed applications the ISV can see (Azure Resource Graph through az), with
// their managed resource group, plan, state, and whether they are connected in config.json.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { findCustomer, loadConfig } from "../lib/state/config.mts";
import { configPathIn, resolveDataDir } from "../lib/state/paths.mts";
import { readSettings } from "../lib/core/settings.mts";

const USAGE = `Usage: 1-list-customers.mts [options]

Lists every managed application the signed-in ISV user can see (Resource Graph), one per
line: subscription, managed resource group, plan, provisioning state, whether it is
connected in config.json, and the managed application id.

Options:
  --json         print the list as a JSON array
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR  state directory; default ./metering-data, or $HOME/clouddrive/metering-data in Cloud Shell
  \`az\` must be on PATH and signed in

Exit codes: 0 ok, 1 failed, 2 usage error
`;

const OPTIONS = { json: { type: "boolean" } } as const;

const out = (text: string) => process.stdout.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`${text}\n`);

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join("  "));
}

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    const config = await loadConfig({ path: configPathIn(resolveDataDir(readSettings())), allowMissing: true });
    const { listManagedApps } = await import("../lib/azure/managed-apps.mts");
    const apps = await listManagedApps();
    const rows = apps.map((app) => ({
      ...app,
      connected: findCustomer(config, { subscriptionId: app.subscriptionId, managedResourceGroup: app.managedResourceGroup }) !== undefined,
    }));
    if (values.json) {
      out(JSON.stringify(rows, null, 2));
      return EXIT_OK;
    }
    if (rows.length === 0) {
      progress("No managed applications visible to the signed-in user (the ISV needs access through the plan's authorizations).");
      return EXIT_OK;
    }
    const lines = table([
      ["SUBSCRIPTION", "MANAGED RESOURCE GROUP", "PLAN", "STATE", "CONNECTED", "MANAGED APP"],
      ...rows.map((r) => [r.subscriptionId, r.managedResourceGroup, r.planName ?? "-", r.provisioningState ?? "-", r.connected ? "yes" : "no", r.managedAppId]),
    ]);
    for (const line of lines) out(line);
    progress(`${rows.length} managed application(s), ${rows.filter((r) => r.connected).length} connected`);
    return EXIT_OK;
  } });
}

process.exitCode = await main(process.argv.slice(2));
