#!/usr/bin/env node
// Lists the managed applications the ISV can see (Azure Resource Graph through az), with
// their managed resource group, plan, state, and whether they are connected in config.json.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { findCustomer, loadConfig } from "../lib/state/config.mts";
import { configPathIn, resolveDataDir } from "../lib/state/paths.mts";
import { readSettings } from "../lib/core/settings.mts";
import { lineWriters, renderTable, widthOf } from "../lib/cli/output.mts";
import { UsageError } from "../lib/core/errors.mts";

const USAGE = `Usage: 1-list-customers.mts [options]

Lists every managed application the signed-in ISV user can see (Resource Graph), one per
line: subscription, managed resource group, plan, provisioning state, and whether it is
connected in config.json. An application not in config.json whose managed resource group
holds a UAMI with a federated credential trusting this ISV's issuer (an offer template
connected it at purchase, templates/offer/) is "connectable (offer template)": record it
with 1-connect-customer <sub> <mrg> --adopt, which deploys nothing. --json adds
connectable, offerIdentity {uamiId, uamiClientId, ficName, issuer, subject, audiences}
and, where the group could not be read, offerIdentityError. The table fits the terminal (80 columns when piped): a long
subscription id or group name is shortened in the middle ("998924ac…6d16e086"), so use
--wide or --json for values to copy into 1-connect-customer.

Options:
  --wide         full values, however wide, plus the application name and id
  --json         print the list as a JSON array (every field, full values)
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR  state directory; default ./metering-data, or $HOME/clouddrive/metering-data in Cloud Shell
  \`az\` must be on PATH and signed in

Exit codes: 0 ok, 1 failed, 2 usage error
`;

const OPTIONS = { json: { type: "boolean" }, wide: { type: "boolean" } } as const;

const { out, progress } = lineWriters(process);

const EMPTY = "(none: the signed-in user sees no managed application; the plan's authorizations must give the ISV access)";

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    if (values.json && values.wide) throw new UsageError("Cannot use --json with --wide: --json already holds every value in full");
    const config = await loadConfig({ path: configPathIn(resolveDataDir(readSettings())), allowMissing: true });
    const { listManagedApps } = await import("../lib/azure/managed-apps.mts");
    const apps = await listManagedApps();
    const connected = (app: typeof apps[number]) => findCustomer(config, { subscriptionId: app.subscriptionId, managedResourceGroup: app.managedResourceGroup }) !== undefined;
    // Offer-template identities are looked for only where they matter: apps not in config, with an issuer to match.
    const issuer = config.publisher?.idp?.issuer;
    const { findConnectableOfferIdentities } = await import("../lib/customers/adopt.mts");
    const offer = issuer
      ? await findConnectableOfferIdentities(apps.filter((a) => !connected(a) && a.managedResourceGroup), { issuer })
      : { found: new Map(), failed: new Map() };
    const rows = apps.map((app) => {
      const key = `${app.subscriptionId}/${app.managedResourceGroup}`.toLowerCase();
      const found = offer.found.get(key);
      const failed = offer.failed.get(key);
      return {
        ...app,
        connected: connected(app),
        connectable: found !== undefined,
        offerIdentity: found ? { uamiId: found.uami.id, uamiClientId: found.uami.clientId, ficName: found.fic.name, issuer: found.fic.issuer, subject: found.fic.subject, audiences: found.fic.audiences } : null,
        ...(failed ? { offerIdentityError: failed } : {}),
      };
    });
    if (offer.failed.size > 0) {
      progress(`Could not look for an offer template's identity in ${offer.failed.size} managed resource group(s): ${[...offer.failed.values()][0]}`);
    }
    if (values.json) {
      out(JSON.stringify(rows, null, 2));
      return EXIT_OK;
    }
    const cells = (r: typeof rows[number]) => [r.subscriptionId, r.managedResourceGroup, r.planName ?? "-", r.provisioningState ?? "-", r.connected ? "yes" : r.connectable ? "connectable (offer template)" : "no"];
    const lines = values.wide
      ? renderTable(rows.map((r) => [...cells(r), r.managedAppId.split("/").pop() ?? "", r.managedAppId]), {
        columns: ["SUBSCRIPTION", "MANAGED RESOURCE GROUP", "PLAN", "STATE", "CONNECTED", "APP", "MANAGED APP ID"],
        width: Infinity,
        empty: EMPTY,
      })
      : renderTable(rows.map(cells), {
        columns: [
          // The subscription gives way first: a GUID stays recognisable by its ends.
          { header: "SUBSCRIPTION", fit: "middle", minWidth: 13, shrinkOrder: 0 },
          { header: "MANAGED RESOURCE GROUP", fit: "middle", shrinkOrder: 1 },
          { header: "PLAN", fit: "middle", minWidth: 8, shrinkOrder: 2 },
          { header: "STATE", fit: "middle", minWidth: 9, shrinkOrder: 2 },
          "CONNECTED",
        ],
        width: widthOf(process.stdout),
        empty: EMPTY,
      });
    for (const line of lines) out(line);
    if (rows.length > 0) {
      const shortened = !values.wide && lines.some((l) => l.includes("…"));
      const connectable = rows.filter((r) => r.connectable).length;
      progress(`${rows.length} managed application(s), ${rows.filter((r) => r.connected).length} connected${connectable ? `, ${connectable} connectable (1-connect-customer <sub> <mrg> --adopt)` : ""}${shortened ? " (ids shortened: --wide for full values)" : ""}`);
    }
    return EXIT_OK;
  } });
}

process.exitCode = await main(process.argv.slice(2));
