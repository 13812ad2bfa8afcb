// A fleet of customers for scale tests and the benchmark: a world with N customer tenants on
// one plan with D dimensions, the ISV set up with the real 0-isv-setup script, and every
// customer connected with the same lib code 1-connect-customer runs (the connect template
// deployed through the sandbox's az back end), without a process per customer.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { setAzRunner, type AzRunner } from "../../lib/azure/az.mts";
import { connectCustomer } from "../../lib/customers/connect.mts";
import { billingOnlyCustomer } from "../../lib/customers/billing-only.mts";
import { loadConfig, updateConfig, withCustomer, type CustomerConfig, type MeteringConfig } from "../../lib/state/config.mts";
import { forEachConcurrently } from "../../lib/metering/submission.mts";
import type { WorldSeed } from "../../sandbox/core/state.mts";
import { isoHour } from "./hours.mts";
import { describe, runScript } from "./scripts.mts";

export interface FleetCustomer {
  subscriptionId: string;
  managedResourceGroup: string;
  resourceUsageId: string;
  dimensions: string[];
}

/** A world seed with `customers` customers (own tenant and subscription each) on one plan of `dimensions` dimensions. */
export function fleetSeed(base: WorldSeed, options: { customers: number; dimensions: number }): WorldSeed {
  const dimensions = Array.from({ length: options.dimensions }, (_, i) => `dim-${String(i + 1).padStart(2, "0")}`);
  const offer = { publisher: "contoso-isv", product: "metered-fleet", plans: [{ name: "fleet", dimensions }] };
  const customers = Array.from({ length: options.customers }, (_, i) => {
    const name = `cust${String(i + 1).padStart(4, "0")}`;
    return {
      name,
      tenantId: randomUUID(),
      tenantName: name,
      subscriptionId: randomUUID(),
      subscriptionName: `${name} production`,
      location: "westeurope",
      resourceGroup: `${name}-apps`,
      managedResourceGroup: `mrg-fleet-${name}`,
      app: {
        name: "metered-fleet",
        resourceUsageId: randomUUID(),
        plan: { name: "fleet", publisher: offer.publisher, product: offer.product, version: "1.0.0" },
        provisioningState: "Succeeded",
      },
    };
  });
  return { ...structuredClone(base), offers: [offer], customers };
}

/** The fleet's customers and dimensions, from the seed. */
export function fleetCustomers(seed: WorldSeed): FleetCustomer[] {
  const dims = seed.offers[0].plans[0].dimensions;
  return seed.customers.map((c) => ({ subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup, resourceUsageId: c.app.resourceUsageId, dimensions: dims }));
}

/** Runs az commands through the sandbox's admin API in this process (what the az stand-in does, without a process). */
export function adminAzRunner(adminUrl: string): AzRunner {
  return async (args) => {
    const res = await fetch(`${adminUrl.replace(/\/+$/, "")}/az`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ argv: args, cwd: process.cwd() }),
    });
    const answer = await res.json() as { exitCode: number; stdout: string; stderr: string };
    return { exitCode: answer.exitCode, stdout: answer.stdout ?? "", stderr: answer.stderr ?? "" };
  };
}

/**
 * Sets up the ISV (0-add-defaults and 0-isv-setup as processes) and connects every customer
 * of the seed in this process. Returns the config. `env` is the sandbox environment with
 * METERING_DATA_DIR.
 */
export async function setupFleet(options: {
  env: Record<string, string>;
  seed: WorldSeed;
  concurrency?: number;
  /**
   * Connect only the first N customers in full (UAMI and federated credential deployed); the rest
   * as `1-connect-customer --billing-only` does (billing ids and plan read from ARM, nothing
   * deployed), for central metering at scale. Default: every customer in full.
   */
  fullConnections?: number;
  onProgress?: (connected: number, total: number) => void;
}): Promise<MeteringConfig> {
  const { env, seed } = options;
  const defaults = await runScript("0-add-defaults.mts", [], { env });
  if (defaults.code !== 0) throw new Error(`0-add-defaults failed\n${describe(defaults)}`);
  const setup = await runScript("0-isv-setup.mts", [], { env });
  if (setup.code !== 0) throw new Error(`0-isv-setup failed\n${describe(setup)}`);

  const path = join(env.METERING_DATA_DIR, "config.json");
  const config = await loadConfig({ path, stage: "idp" });
  const previous = setAzRunner(adminAzRunner(env.METERING_SANDBOX_ADMIN));
  const connected: Array<{ subscriptionId: string; managedResourceGroup: string; customer: CustomerConfig }> = [];
  try {
    const full = new Set(seed.customers.slice(0, options.fullConnections ?? seed.customers.length));
    await forEachConcurrently(seed.customers, options.concurrency ?? 4, async (c) => {
      const ref = { subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup };
      const customer = full.has(c) ? await connectCustomer({ config, ...ref }) : await billingOnlyCustomer(ref);
      connected.push({ subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup, customer });
      options.onProgress?.(connected.length, seed.customers.length);
    });
  } finally {
    setAzRunner(previous);
  }
  // Connected long ago as far as 2-emit-meter is concerned: no propagation retries.
  const connectedAt = new Date(Date.now() - 3_600_000).toISOString();
  const { config: saved } = await updateConfig({
    path,
    update: (current) => connected.reduce((cfg, c) => withCustomer(cfg, { ...c, customer: { ...c.customer, connectedAt } }), current),
  });
  return saved;
}

/**
 * Usage rows as CSV: one per (customer, dimension), quantity from `quantityOf`, for the hour
 * `hoursAgo` back (hours-ago) or the hour starting at `hour` (epoch ms; effective-start-time).
 */
export function fleetCsv(customers: FleetCustomer[], options: { hoursAgo?: number; hour?: number; perCustomer?: number; quantityOf?: (ci: number, di: number) => number } = {}): { csv: string; rows: number } {
  const when = options.hour === undefined ? String(options.hoursAgo ?? 1) : isoHour(options.hour);
  const lines = [`subscription,managed-resource-group,dimension,quantity,${options.hour === undefined ? "hours-ago" : "effective-start-time"}`];
  customers.forEach((c, ci) => {
    const n = Math.min(options.perCustomer ?? c.dimensions.length, c.dimensions.length);
    for (let di = 0; di < n; di++) {
      const q = options.quantityOf?.(ci, di) ?? ci + di + 1;
      lines.push(`${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[di]},${q},${when}`);
    }
  });
  return { csv: `${lines.join("\n")}\n`, rows: lines.length - 1 };
}

export type AcceptedEvent = { resourceId: string; dimension: string; quantity: number; effectiveStartTime: string; usageEventId?: string };

/**
 * A test sandbox seeded with a fleet, the ISV set up and the first `connect` customers
 * (default all) connected, with the accessors the scale tests share.
 */
export async function startFleet(options: { customers: number; dimensions: number; connect?: number; env?: Record<string, string> }) {
  const { startTestSandbox, admin } = await import("./sandbox.mts");
  const { sandboxEnv } = await import("./scripts.mts");
  const { loadWorldSeed } = await import("../../sandbox/main.mts");
  const seed = fleetSeed(await loadWorldSeed(), options);
  const sb = await startTestSandbox({ seed });
  const env = { ...(await sandboxEnv(sb)), ...options.env };
  const dataDir = env.METERING_DATA_DIR;
  await setupFleet({ env, seed: { ...seed, customers: seed.customers.slice(0, options.connect ?? seed.customers.length) } });
  return {
    sb, seed, env, dataDir,
    auditPath: join(dataDir, "audit.jsonl"),
    customers: fleetCustomers(seed),
    /** Every usage event the metering emulator accepted. */
    events: () => admin<AcceptedEvent[]>(sb, "GET", "/metering/events"),
    /** The sandbox's request counters per service and route. */
    counters: () => admin<Record<string, Record<string, number>>>(sb, "GET", "/requests"),
  };
}

export { hourStart } from "./hours.mts";
