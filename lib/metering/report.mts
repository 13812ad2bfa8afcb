// The usage report: what the audit log's ledger holds as billed, per customer × dimension ×
// period (hour, day or month, UTC), and, where config.json gives prices, the amount per
// customer and in total: a preview of the bill. Billed means the API holds it: `accepted`
// entries (Accepted, Duplicate with the original's quantity) and events settled as billed by
// 4-reconcile (status Reconciled); events settled as not billed (NotBilled) and refusals are
// left out, events of unknown fate are counted apart. Sums are exact decimals (decimal.mts).
import type { MeteringConfig } from "../state/config.mts";
import { customerKey, isSameCustomer, type CustomerRef } from "../state/customers.mts";
import { DecimalSum, decimalUnits, SUM_FRACTION_DIGITS } from "../core/decimal.mts";
import type { Ledger, LedgerEntry } from "./ledger.mts";
import { hourStartMs } from "./time.mts";

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** How the report cuts time. */
export type ReportGranularity = "hour" | "day" | "month";
export const REPORT_GRANULARITIES: readonly ReportGranularity[] = ["hour", "day", "month"];
/** More periods than this in one report are refused (an hourly report of years): choose a coarser `by`. */
export const MAX_REPORT_PERIODS = 10_000;
/** Price and amount digits kept past the point: prices are given per unit, often to 4 or 6 places. */
const PRICE_FRACTION_DIGITS = 8;

/** Prices of one plan, from config.json `plans.<planId>`. */
export interface PlanPrices {
  currency: string;
  /** Dimension id → price per unit, as the decimal text config gives it. */
  dimensions: Record<string, string>;
}

/** `plans` of config.json, checked: planId → prices. */
export type PriceList = Record<string, PlanPrices>;

/** One customer × dimension × period. */
export interface ReportCell {
  customer: CustomerRef;
  resourceId: string;
  planId: string;
  dimension: string;
  /** `YYYY-MM-DDTHH:00Z`, `YYYY-MM-DD` or `YYYY-MM`. */
  period: string;
  quantity: number;
  /** Billed events (one per resource, dimension and hour). */
  count: number;
  /** quantity × the plan's price for the dimension, exact, when priced; in `currency`. */
  amount?: string;
  currency?: string;
}

/** One customer's dimension over the whole report. */
export interface ReportCustomerLine {
  planId: string;
  dimension: string;
  quantity: number;
  count: number;
  unitPrice?: string;
  currency?: string;
  amount?: string;
}

export interface ReportCustomer {
  customer: CustomerRef;
  resourceId: string;
  lines: ReportCustomerLine[];
  /** Per currency (one, unless plans are priced in several). */
  amounts: Array<{ currency: string; amount: string }>;
}

export interface UsageReport {
  since: string;
  until: string;
  by: ReportGranularity;
  /** Every period of the report, in order (also those without usage). */
  periods: string[];
  /** Dimensions with billed usage, sorted. */
  dimensions: string[];
  cells: ReportCell[];
  customers: ReportCustomer[];
  totals: {
    byDimension: Array<{ dimension: string; quantity: number; count: number }>;
    quantity: number;
    count: number;
    amounts: Array<{ currency: string; amount: string }>;
  };
  /** Dimensions of plans billed but without a price (none when config gives no `plans`). */
  unpriced: Array<{ planId: string; dimension: string }>;
  /** Events of the period whose fate the log does not know (open, unknown): not in the figures. */
  unresolved: { count: number; quantity: number };
}

/** A `YYYY-MM-DD` day as epoch ms at 00:00 UTC, or undefined when it is not a real date. Pure. */
export function parseReportDay(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return undefined;
  const ms = Date.parse(`${text}T00:00:00Z`);
  return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== text ? undefined : ms;
}

/** The report's default period: from the first day of `nowMs`'s UTC month to its day. Pure. */
export function defaultReportPeriod(nowMs: number): { sinceMs: number; untilMs: number } {
  const now = new Date(nowMs);
  return { sinceMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1), untilMs: Math.floor(nowMs / DAY_MS) * DAY_MS };
}

/** The label of the period holding `ms`. Pure. */
export function periodOf(ms: number, by: ReportGranularity): string {
  const iso = new Date(ms).toISOString();
  if (by === "hour") return `${iso.slice(0, 13)}:00Z`;
  return by === "day" ? iso.slice(0, 10) : iso.slice(0, 7);
}

/** Every period label from the day `sinceMs` to the day `untilMs` (inclusive). Pure. */
export function periodsBetween(sinceMs: number, untilMs: number, by: ReportGranularity): string[] {
  const out: string[] = [];
  const end = untilMs + DAY_MS;
  if (by === "month") {
    const d = new Date(sinceMs);
    for (let y = d.getUTCFullYear(), m = d.getUTCMonth(); Date.UTC(y, m, 1) < end; m === 11 ? (y++, m = 0) : m++) out.push(periodOf(Date.UTC(y, m, 1), by));
    return out;
  }
  const step = by === "hour" ? HOUR_MS : DAY_MS;
  for (let t = sinceMs; t < end; t += step) out.push(periodOf(t, by));
  return out;
}

/**
 * Checks config.json's `plans` (optional): `{ "<planId>": { "currency": "USD", "dimensions":
 * { "<dimension>": { "price": "0.05" } } } }`. A price is a decimal number of the currency per
 * unit (text or number, >= 0); the currency an ISO 4217 code. Pure; returns the prices or the
 * first problem, as `plans.<planId>…: what is wrong`.
 */
export function priceListOf(config: MeteringConfig): { prices: PriceList; problem?: undefined } | { prices?: undefined; problem: string } {
  const plans = config.plans;
  if (plans === undefined) return { prices: {} };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  const short = (v: unknown) => {
    const s = JSON.stringify(v) ?? String(v);
    return s.length > 40 ? `${s.slice(0, 37)}...` : s;
  };
  if (!isObject(plans)) return { problem: `plans: expected an object of plan ids, got ${short(plans)}` };
  const prices: PriceList = {};
  for (const [planId, plan] of Object.entries(plans)) {
    const path = `plans.${planId}`;
    if (!isObject(plan)) return { problem: `${path}: expected an object with "currency" and "dimensions", got ${short(plan)}` };
    if (plan.dimensions === undefined) continue;
    if (typeof plan.currency !== "string" || !/^[A-Z]{3}$/.test(plan.currency)) {
      return { problem: `${path}.currency: expected a currency code such as "USD", got ${short(plan.currency)}` };
    }
    if (!isObject(plan.dimensions)) return { problem: `${path}.dimensions: expected an object of dimension ids, got ${short(plan.dimensions)}` };
    const dims: Record<string, string> = {};
    for (const [dimension, d] of Object.entries(plan.dimensions)) {
      const price = isObject(d) ? d.price : undefined;
      const text = typeof price === "number" && Number.isFinite(price) ? String(price) : price;
      if (typeof text !== "string" || !/^\d+(\.\d+)?$/.test(text) || (text.split(".")[1]?.length ?? 0) > PRICE_FRACTION_DIGITS) {
        return { problem: `${path}.dimensions.${dimension}.price: expected a price per unit >= 0 with a dot and at most ${PRICE_FRACTION_DIGITS} decimals, such as "0.05", got ${short(price)}` };
      }
      dims[dimension] = text;
    }
    prices[planId] = { currency: plan.currency, dimensions: dims };
  }
  return { prices };
}

/** A decimal text as an integer count of 10^-digits (digits past that are not expected here). */
function _units(text: string, digits: number): bigint {
  const [whole, fraction = ""] = text.split(".");
  return BigInt(whole + fraction.padEnd(digits, "0").slice(0, digits));
}

/** Units of 10^-digits as decimal text with at least `minDigits` fraction digits. */
function _format(units: bigint, digits: number, minDigits = 0): string {
  const scale = 10n ** BigInt(digits);
  let fraction = (units % scale).toString().padStart(digits, "0").replace(/0+$/, "");
  if (fraction.length < minDigits) fraction = fraction.padEnd(minDigits, "0");
  return `${units / scale}${fraction ? `.${fraction}` : ""}`;
}

/** Digits of an amount: the sum's (9) plus the price's. */
const AMOUNT_DIGITS = 9 + PRICE_FRACTION_DIGITS;

/** quantity (a rounded sum) × price, exact, in units of 10^-AMOUNT_DIGITS. */
function _amountUnits(quantity: DecimalSum, price: string): bigint {
  return _units(quantity.toDecimalString(), 9) * _units(price, PRICE_FRACTION_DIGITS);
}

/** Money as a person reads it: exact, at least 2 decimals. */
export function formatAmount(units: bigint): string {
  return _format(units, AMOUNT_DIGITS, 2);
}

class _Tally {
  readonly sum = new DecimalSum();
  add(q: number) {
    this.sum.add(q);
  }
  get count() {
    return this.sum.count;
  }
  get quantity() {
    return this.sum.toNumber();
  }
}

/**
 * Builds the report from a ledger (one that holds every key from `sinceMs` on: reconcile.mts
 * `loadPeriodLedger`). Pure. `only` keeps one customer's usage.
 */
export function buildUsageReport(o: {
  ledger: Ledger;
  sinceMs: number;
  /** The last day, inclusive (00:00 UTC of it). */
  untilMs: number;
  by: ReportGranularity;
  prices?: PriceList;
  only?: CustomerRef;
}): UsageReport {
  const prices = o.prices ?? {};
  const endMs = o.untilMs + DAY_MS;
  const cells = new Map<string, { entry: LedgerEntry; period: string; tally: _Tally }>();
  const perCustomer = new Map<string, { customer: CustomerRef; resourceId: string; lines: Map<string, { planId: string; dimension: string; tally: _Tally }> }>();
  const byDimension = new Map<string, _Tally>();
  const total = new _Tally();
  const unresolved = new _Tally();
  for (const entry of o.ledger.entries.values()) {
    const hourMs = hourStartMs(Date.parse(entry.event.effectiveStartTime));
    if (hourMs < o.sinceMs || hourMs >= endMs) continue;
    if (o.only && !isSameCustomer(entry.customer, o.only)) continue;
    if (entry.state === "open" || entry.state === "unknown") {
      unresolved.add(entry.event.quantity);
      continue;
    }
    if (entry.state !== "accepted") continue;
    const quantity = entry.billedQuantity ?? entry.event.quantity;
    const { dimension, planId } = entry.event;
    const who = customerKey(entry.customer);
    const period = periodOf(hourMs, o.by);
    const cellKey = `${who}|${planId}|${dimension}|${period}`;
    let cell = cells.get(cellKey);
    if (!cell) cells.set(cellKey, cell = { entry, period, tally: new _Tally() });
    cell.tally.add(quantity);
    let c = perCustomer.get(who);
    if (!c) perCustomer.set(who, c = { customer: entry.customer, resourceId: entry.event.resourceId, lines: new Map() });
    const lineKey = `${planId}|${dimension}`;
    let line = c.lines.get(lineKey);
    if (!line) c.lines.set(lineKey, line = { planId, dimension, tally: new _Tally() });
    line.tally.add(quantity);
    let d = byDimension.get(dimension);
    if (!d) byDimension.set(dimension, d = new _Tally());
    d.add(quantity);
    total.add(quantity);
  }

  const priceOf = (planId: string, dimension: string) => {
    const plan = prices[planId];
    const price = plan?.dimensions[dimension];
    return plan && price !== undefined ? { currency: plan.currency, price } : undefined;
  };
  const unpriced = new Map<string, { planId: string; dimension: string }>();
  const grand = new Map<string, bigint>();
  const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const customers: ReportCustomer[] = [...perCustomer.values()]
    .sort((a, b) => byText(customerKey(a.customer), customerKey(b.customer)))
    .map((c) => {
      const own = new Map<string, bigint>();
      const lines = [...c.lines.values()].sort((a, b) => byText(a.dimension, b.dimension) || byText(a.planId, b.planId)).map((l): ReportCustomerLine => {
        const p = priceOf(l.planId, l.dimension);
        const base = { planId: l.planId, dimension: l.dimension, quantity: l.tally.quantity, count: l.tally.count };
        if (!p) {
          if (Object.keys(prices).length > 0) unpriced.set(`${l.planId}|${l.dimension}`, { planId: l.planId, dimension: l.dimension });
          return base;
        }
        const units = _amountUnits(l.tally.sum, p.price);
        own.set(p.currency, (own.get(p.currency) ?? 0n) + units);
        grand.set(p.currency, (grand.get(p.currency) ?? 0n) + units);
        return { ...base, unitPrice: p.price, currency: p.currency, amount: formatAmount(units) };
      });
      return { customer: c.customer, resourceId: c.resourceId, lines, amounts: _amounts(own) };
    });

  const periodList = periodsBetween(o.sinceMs, o.untilMs, o.by);
  return {
    since: periodOf(o.sinceMs, "day"),
    until: periodOf(o.untilMs, "day"),
    by: o.by,
    periods: periodList,
    dimensions: [...byDimension.keys()].sort(byText),
    cells: [...cells.values()]
      .map(({ entry, period, tally }): ReportCell => {
        const p = priceOf(entry.event.planId, entry.event.dimension);
        return {
          customer: entry.customer, resourceId: entry.event.resourceId, planId: entry.event.planId, dimension: entry.event.dimension, period,
          quantity: tally.quantity, count: tally.count, ...(p ? { amount: formatAmount(_amountUnits(tally.sum, p.price)), currency: p.currency } : {}),
        };
      })
      .sort((a, b) => byText(customerKey(a.customer), customerKey(b.customer)) || byText(a.dimension, b.dimension) || byText(a.period, b.period) || byText(a.planId, b.planId)),
    customers,
    totals: {
      byDimension: [...byDimension.entries()].sort(([a], [b]) => byText(a, b)).map(([dimension, t]) => ({ dimension, quantity: t.quantity, count: t.count })),
      quantity: total.quantity,
      count: total.count,
      amounts: _amounts(grand),
    },
    unpriced: [...unpriced.values()],
    unresolved: { count: unresolved.count, quantity: unresolved.quantity },
  };
}

function _amounts(map: Map<string, bigint>): Array<{ currency: string; amount: string }> {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([currency, units]) => ({ currency, amount: formatAmount(units) }));
}

/** The cells as CSV (RFC 4180 quoting), one line per customer × dimension × period, with a header. Pure. */
export function reportCsv(report: UsageReport): string {
  const q = (v: string | number | undefined) => {
    const s = v === undefined ? "" : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = ["subscription,managed-resource-group,resource-id,plan,dimension,period,quantity,events,amount,currency"];
  for (const c of report.cells) {
    lines.push([c.customer.subscriptionId, c.customer.managedResourceGroup, c.resourceId, c.planId, c.dimension, c.period, c.quantity, c.count, c.amount, c.currency].map(q).join(","));
  }
  return `${lines.join("\r\n")}\r\n`;
}

/** An exact decimal text of a quantity (what the report's sums print as). */
export function quantityText(quantity: number): string {
  return _format(decimalUnits(quantity), SUM_FRACTION_DIGITS);
}
