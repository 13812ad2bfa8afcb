#!/usr/bin/env node
// Planning at scale without a sandbox: a config.json of N connected customers, a usage file of
// N × D rows, and an audit log holding an earlier hour of every customer (so each row's key is
// looked up in the ledger), then `2-emit-meter.mts --file … --dry-run` as a process. Prints its
// CPU time (user + system: reading the input, the ledger, checking and planning) and peak memory.
//
// Usage: node --import tsx bench/plan.mts [--customers N --dimensions D --runtime PATH…]
// Also run by `npm run bench` (bench/scale.mts) for 4,000 customers × 25 dimensions.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { childCpuSeconds, runMeasured } from "./measure.mts";
import { tsRunner } from "../sandbox/core/runtime.mts";
import { isoSeconds, usageKey } from "../lib/metering/time.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const HOUR_MS = 3_600_000;

/** A customer of the synthetic fleet: ids that look like Azure's, one plan of `dimensions`. */
function _fleet(customers: number) {
  const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
  return Array.from({ length: customers }, (_, i) => ({
    subscriptionId: `${hex(i, 8)}-1111-4111-8111-${hex(i, 12)}`,
    managedResourceGroup: `mrg-fleet-cust${String(i + 1).padStart(4, "0")}`,
    resourceId: `${hex(i, 8)}-5555-4555-8555-${hex(i, 12)}`,
  }));
}

/** Writes the data directory and the usage file; returns their paths. */
export async function writePlanWorkload(dir: string, o: { customers: number; dimensions: number; now?: number }): Promise<{ dataDir: string; file: string; rows: number }> {
  const now = o.now ?? Date.now();
  const fleet = _fleet(o.customers);
  const dims = Array.from({ length: o.dimensions }, (_, i) => `dim-${String(i + 1).padStart(2, "0")}`);
  const customers: Record<string, Record<string, unknown>> = {};
  for (const c of fleet) {
    customers[c.subscriptionId] = {
      [c.managedResourceGroup]: {
        uamiClientId: "33333333-3333-4333-8333-333333333333", tenantId: "44444444-4444-4444-8444-444444444444",
        subject: "metering-submission-via-uami", audience: "api://AzureADTokenExchange", uamiName: "metering-submission-uami",
        billing: { resourceId: c.resourceId, resourceUri: `/subscriptions/${c.subscriptionId}/resourceGroups/rg/providers/Microsoft.Solutions/applications/app` },
        planName: "fleet",
      },
    };
  }
  const kid = "https://idpbench.vault.azure.net/keys/idpkey/0123456789abcdef0123456789abcdef";
  const config = {
    publisher: {
      aadTenantId: "11111111-1111-4111-8111-111111111111", subscriptionId: "22222222-2222-4222-8222-222222222222",
      resourceGroup: "marketplace-metering-idp-backend", location: "westeurope",
      optional: { storageAccountName: "idpbench", containerName: "public", keyVaultName: "idpbench" },
      idp: { issuer: "https://idpbench.blob.core.windows.net/public", keyUri: "https://idpbench.vault.azure.net/keys/idpkey", keyId: kid, keyJson: { kid, kty: "RSA", e: "AQAB", n: "AQAB", keyOps: ["sign"] } },
    },
    customers,
  };
  const dataDir = join(dir, "data");
  await rm(dataDir, { recursive: true, force: true });
  const { mkdir } = await import("node:fs/promises");
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, "config.json"), JSON.stringify(config), { mode: 0o600 });
  // An earlier hour of every customer, accepted: the ledger knows every resource.
  const earlier = isoSeconds(Math.floor(now / HOUR_MS) * HOUR_MS - 3 * HOUR_MS);
  const audit: string[] = [];
  for (const c of fleet) {
    const events = dims.map((dimension) => ({ resourceId: c.resourceId, dimension, quantity: 1, effectiveStartTime: earlier, planId: "fleet" }));
    const customer = { subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup };
    const time = isoSeconds(now - 2 * HOUR_MS);
    audit.push(JSON.stringify({ time, operation: "batchUsageEvent.intent", id: `i-${c.resourceId}`, customer, request: { method: "POST", url: "https://marketplaceapi.microsoft.com/api/batchUsageEvent?api-version=2018-08-31", headers: {}, body: { request: events } } }));
    audit.push(JSON.stringify({ time, operation: "batchUsageEvent", id: `i-${c.resourceId}`, customer, response: { status: 200, body: null }, events: events.map((e) => ({ key: usageKey(e), status: "Accepted", state: "accepted", billedQuantity: 1 })) }));
  }
  await writeFile(join(dataDir, "audit.jsonl"), audit.join("\n") + "\n", { mode: 0o600 });
  const lines = ["subscription,managed-resource-group,dimension,quantity,hours-ago"];
  for (const c of fleet) for (const d of dims) lines.push(`${c.subscriptionId},${c.managedResourceGroup},${d},1,1`);
  const file = join(dir, "usage.csv");
  await writeFile(file, lines.join("\n") + "\n");
  return { dataDir, file, rows: lines.length - 1 };
}

/** Runs the dry run once; CPU seconds of the process and its peak memory. */
export async function measurePlan(o: { customers: number; dimensions: number; runtime?: string[]; script?: string }): Promise<{ rows: number; cpuS: number; wallS: number; peakMb: number }> {
  const dir = await mkdtemp(join(tmpdir(), "metering-bench-plan-"));
  try {
    const { dataDir, file, rows } = await writePlanWorkload(dir, o);
    const rt = o.runtime ?? tsRunner();
    const env = { ...process.env as Record<string, string>, METERING_DATA_DIR: dataDir, AZURE_HTTP_USER_AGENT: "" };
    const cpu0 = childCpuSeconds();
    const r = await runMeasured([...rt, o.script ?? join(ROOT, "scripts", "2-emit-meter.mts"), "--file", file, "--dry-run"], { cwd: ROOT, env });
    const cpuS = childCpuSeconds() - cpu0;
    if (r.code !== 0 || !/Would send/.test(r.out)) throw new Error(`the dry run failed (exit ${r.code}):\n${r.out.slice(-2000)}`);
    return { rows, cpuS, wallS: r.ms / 1000, peakMb: r.peakMb };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(ROOT, "bench", "plan.mts")) {
  const { values } = parseArgs({ options: { customers: { type: "string", default: "4000" }, dimensions: { type: "string", default: "25" } }, strict: true });
  const customers = Number(values.customers), dimensions = Number(values.dimensions);
  const r = await measurePlan({ customers, dimensions });
  process.stdout.write(`plan ${r.rows} events / ${customers} customers / ${dimensions} dimensions: CPU ${r.cpuS.toFixed(2)} s, wall ${r.wallS.toFixed(2)} s, peak memory ${r.peakMb.toFixed(0)} MB (2-emit-meter --dry-run, ${tsRunner().join(" ")})\n`);
}
