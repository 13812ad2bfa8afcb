// Recurring charges (config.json `meters`): a fixed quantity of a dimension every hour, day or
// month, for all customers or some. A run with `--meters` plans every charge that is due and
// not billed yet: hourly charges for every hour still inside the API's 24-hour window (so runs
// that were missed are caught up), daily ones at the first hour of each UTC day, monthly ones at
// the first hour of each UTC month. A charge whose hour left the window unbilled is reported as
// missed, with the amount lost, once: by the first run that finds it (a `usage.missed` record
// keeps later runs from saying it again); the ledger reads 48 hours, so a run looks one day
// before the window for such hours. The rows go through the same planner as a file's, so a
// second run, or two runners at once (the run lock), bills each charge once. Pure.
import { UsageError } from "../core/errors.mts";
import { dimensionProblem, isGuid, isResourceGroupName } from "../core/validate.mts";
import { customerIndexOf, type CustomerRef } from "../state/customers.mts";
import type { CustomerConfig, MeteringConfig } from "../state/config.mts";
import { HOUR_MS, hourStartMs, isoSeconds, usageKey, USAGE_WINDOW_MS } from "./time.mts";
import { UsageRows } from "./usage-file.mts";
import type { Ledger } from "./ledger.mts";
import type { EventReport } from "./submission.mts";
import { missedRecord, type MissedRecord } from "../audit/records.mts";

export type MeterEvery = "hour" | "day" | "month";

/** One recurring charge, as config.json `meters[]` gives it (checked). */
export interface Meter {
  dimension: string;
  quantity: number;
  every: MeterEvery;
  /** "all" connected customers, or `<subscription>/<managed resource group>` of each. */
  customers: "all" | CustomerRef[];
  /** Epoch ms of the first hour charged. */
  fromMs: number;
}

/**
 * Reads and checks config.json `meters` (absent: none). Every problem is one UsageError naming
 * the entry and the field, so a bad config fails before anything is planned.
 */
export function readMeters(config: MeteringConfig): Meter[] {
  const raw = config.meters;
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new UsageError("Cannot use config.json meters: it must be a list of charges, e.g. [{ \"dimension\": \"base-fee\", \"quantity\": 1, \"every\": \"hour\", \"customers\": \"all\", \"from\": \"2026-12-01T00:00:00Z\" }]");
  return raw.map((m: unknown, i) => {
    const bad = (what: string): never => {
      throw new UsageError(`Cannot use config.json meters[${i}]: ${what}`);
    };
    if (typeof m !== "object" || m === null || Array.isArray(m)) bad("not an object");
    const e = m as Record<string, unknown>;
    const known = new Set(["dimension", "quantity", "every", "customers", "from"]);
    const unknown = Object.keys(e).filter((k) => !known.has(k));
    if (unknown.length > 0) bad(`unknown key ${unknown.map((k) => JSON.stringify(k)).join(", ")} (expected dimension, quantity, every, customers, from)`);
    if (typeof e.dimension !== "string") bad("dimension is missing");
    const wrong = dimensionProblem(e.dimension as string);
    if (wrong) bad(`dimension ${JSON.stringify(e.dimension)}: ${wrong}`);
    if (typeof e.quantity !== "number" || !Number.isFinite(e.quantity) || e.quantity <= 0) bad("quantity must be a number greater than 0");
    if (e.every !== "hour" && e.every !== "day" && e.every !== "month") bad(`every must be "hour", "day" or "month", not ${JSON.stringify(e.every)}`);
    let customers: Meter["customers"] = "all";
    if (e.customers !== undefined && e.customers !== "all") {
      if (!Array.isArray(e.customers) || e.customers.length === 0) bad('customers must be "all" or a list of "<subscription>/<managed-resource-group>"');
      customers = (e.customers as unknown[]).map((c) => {
        const [sub, mrg, ...rest] = typeof c === "string" ? c.split("/") : [];
        if (!sub || !mrg || rest.length > 0 || !isGuid(sub) || !isResourceGroupName(mrg)) bad(`customer ${JSON.stringify(c)} is not "<subscription id>/<managed resource group>"`);
        return { subscriptionId: sub, managedResourceGroup: mrg };
      });
    }
    const fromMs = typeof e.from === "string" && /(Z|[+-]\d{2}:\d{2})$/.test(e.from) ? Date.parse(e.from) : NaN;
    if (Number.isNaN(fromMs)) bad("from must be an ISO 8601 time with a zone, e.g. 2026-12-01T00:00:00Z");
    return { dimension: e.dimension as string, quantity: e.quantity as number, every: e.every as MeterEvery, customers, fromMs: hourStartMs(fromMs) };
  });
}

/** Whether the hour starting at `ms` is a charge hour of `every`. */
function _isChargeHour(ms: number, every: MeterEvery): boolean {
  if (every === "hour") return true;
  const d = new Date(ms);
  if (d.getUTCHours() !== 0) return false;
  return every === "day" || d.getUTCDate() === 1;
}

/**
 * The charges due at `now`: one row per customer, meter and charge hour inside the window that
 * the ledger holds no event for (an open one is the planner's to resend; a refused one is
 * planned again); and the charges missed, as Missed reports and the records that say so once:
 * charge hours of the day before the window with no event at all. Customers not connected (or
 * without billing ids) are left out.
 */
export function dueCharges(o: { meters: Meter[]; config: MeteringConfig; ledger: Ledger; now: number }): { rows: UsageRows; reports: EventReport[]; records: MissedRecord[] } {
  const index = customerIndexOf(o.config);
  const rows = new UsageRows();
  const reports: EventReport[] = [];
  const records: MissedRecord[] = [];
  const currentHour = hourStartMs(o.now);
  const windowStart = hourStartMs(o.now - USAGE_WINDOW_MS) + HOUR_MS;
  // What the ledger can say about: two windows back (it reads 48 hours).
  const ledgerStart = windowStart - USAGE_WINDOW_MS;
  const all = Object.entries(o.config.customers ?? {}).flatMap(([subscriptionId, groups]) => Object.keys(groups ?? {}).map((managedResourceGroup) => ({ subscriptionId, managedResourceGroup })));
  for (const meter of o.meters) {
    for (const ref of meter.customers === "all" ? all : meter.customers) {
      const found = index.find(ref);
      const billing = (found?.customer as CustomerConfig | undefined)?.billing;
      if (!found || !billing?.resourceId) continue;
      const customer = { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup };
      for (let h = Math.max(meter.fromMs, ledgerStart); h <= currentHour; h += HOUR_MS) {
        if (!_isChargeHour(h, meter.every)) continue;
        const effectiveStartTime = isoSeconds(h);
        const key = usageKey({ resourceId: billing.resourceId, dimension: meter.dimension, effectiveStartTime });
        const entry = o.ledger.get(key);
        if (h < windowStart) {
          if (!entry && !o.ledger.missed.has(key)) {
            const event = { resourceId: billing.resourceId, ...(billing.resourceUri ? { resourceUri: billing.resourceUri } : {}), planId: (found.customer as CustomerConfig).planName ?? "", dimension: meter.dimension, quantity: meter.quantity, effectiveStartTime };
            reports.push({ key, customer, event, status: "Missed", ok: false, sent: false, message: `no run billed this ${meter.every === "hour" ? "hourly" : meter.every === "day" ? "daily" : "monthly"} charge while its hour was in the API's 24-hour window; ${meter.quantity} ${meter.dimension} is lost` } as EventReport);
            records.push(missedRecord({ customer, key, dimension: meter.dimension, effectiveStartTime, quantity: meter.quantity }));
          }
          continue;
        }
        if (entry && entry.state !== "failed") continue;
        rows.push({ line: 0, ...customer, dimension: meter.dimension, quantity: meter.quantity, effectiveStartTime });
      }
    }
  }
  return { rows, reports, records };
}
