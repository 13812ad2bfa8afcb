// Reconciliation: the audit log's ledger folded per customer × dimension × UTC day, compared
// with what the metering API itself reports for those days (GET /api/usageEvents, the
// publisher app's token; docs/azure-behaviour.md §1.6). Where the API's figures leave exactly
// one explanation for events whose fate the log does not know (sent without an answer, past
// the 24-hour window), they are settled as billed or not billed by an appended `reconcile`
// record, which the ledger then reads like any other outcome (ledger.mts). Nothing is guessed:
// two possible explanations leave the events unresolved, with the numbers.
import { reconcileRecord, type ReconcileRecord } from "../audit/records.mts";
import type { AuditRecord } from "../audit/log.mts";
import type { LedgerStore } from "../audit/store.mts";
import type { CustomerRef } from "../state/customers.mts";
import type { UsageEvent, UsageReportClient, UsageReportRow } from "./api.mts";
import { Ledger, type LedgerEntry } from "./ledger.mts";
import { hourStartMs, USAGE_WINDOW_MS } from "./time.mts";

const DAY_MS = 86_400_000;
/** Days per GET /api/usageEvents call: a long period is read in pieces (and shows progress). */
export const RECONCILE_CHUNK_DAYS = 7;
/** More unresolved events than this in one customer × dimension × day are not searched for an explanation. */
const MAX_SEARCHED_EVENTS = 20;

/** What a line of the comparison says. */
export type ReconcileVerdict =
  | "match"
  | "missing at Microsoft"
  | "unknown to the ledger"
  | "quantity differs"
  | "Rejected"
  | "Mismatch"
  | "unresolved";

/** One customer × dimension × UTC day. */
export interface ReconcileLine {
  /** Undefined for usage of a resource no customer in config has (another sender). */
  customer?: CustomerRef;
  resourceId: string;
  dimension: string;
  /** `YYYY-MM-DD`. */
  day: string;
  /** What the ledger holds as billed (after this run's settlements): quantity and number of events. */
  ledgerQuantity: number;
  ledgerCount: number;
  /** Events of the day whose fate the ledger did not know before this run. */
  unresolvedCount: number;
  /** The API's figures (absent: the API has no row for it). */
  apiQuantity?: number;
  apiCount?: number;
  reconStatus?: string;
  verdict: ReconcileVerdict;
  /** Why, in a sentence, when it is not a plain match. */
  note?: string;
}

/** An event settled by this run, with the record that says so. */
export interface Settlement {
  key: string;
  customer: CustomerRef;
  event: UsageEvent;
  billed: boolean;
  record: ReconcileRecord;
}

/** An event whose fate is still not known after this run. */
export interface UnresolvedEvent {
  key: string;
  customer: CustomerRef;
  event: UsageEvent;
  state: "open" | "unknown";
  reason: string;
}

export interface ReconcileResult {
  since: string;
  until: string;
  lines: ReconcileLine[];
  settlements: Settlement[];
  unresolved: UnresolvedEvent[];
  /** Every line matches and nothing is unresolved. */
  ok: boolean;
}

/** A `YYYY-MM-DD` day as epoch ms at 00:00 UTC, or undefined when it is not a real date. Pure. */
export function parseUtcDay(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return undefined;
  const ms = Date.parse(`${text}T00:00:00Z`);
  return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== text ? undefined : ms;
}

const dayOf = (ms: number) => new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * Reads the API's figures for the period, in pieces of RECONCILE_CHUNK_DAYS days, each with a
 * fresh call to `getToken` (cached by the caller's credential).
 */
export async function fetchUsageReport(o: {
  client: UsageReportClient;
  getToken: () => Promise<string>;
  sinceMs: number;
  untilMs: number;
  azureSubscriptionId?: string;
  onProgress?: (done: number, total: number) => void;
}): Promise<UsageReportRow[]> {
  const rows: UsageReportRow[] = [];
  const chunks: Array<[number, number]> = [];
  for (let start = o.sinceMs; start <= o.untilMs; start += RECONCILE_CHUNK_DAYS * DAY_MS) {
    chunks.push([start, Math.min(o.untilMs, start + (RECONCILE_CHUNK_DAYS - 1) * DAY_MS)]);
  }
  o.onProgress?.(0, chunks.length);
  for (const [i, [start, end]] of chunks.entries()) {
    rows.push(...await o.client.listUsageEvents({
      accessToken: await o.getToken(),
      query: { usageStartDate: dayOf(start), usageEndDate: dayOf(end), ...(o.azureSubscriptionId ? { azureSubscriptionId: o.azureSubscriptionId } : {}) },
    }));
    o.onProgress?.(i + 1, chunks.length);
  }
  return rows;
}

/**
 * The ledger of every event whose hour is at or after `sinceMs`, from the part of the audit log
 * that can hold them (a record is written after its event's hour).
 */
export async function loadPeriodLedger(o: { store: LedgerStore; sinceMs: number }): Promise<Ledger> {
  const ledger = new Ledger({ sinceMs: o.sinceMs });
  await o.store.scan({ sinceMs: o.sinceMs, onRecord: (r: AuditRecord) => ledger.add(r) });
  return ledger;
}

interface _Group {
  resourceId: string;
  dimension: string;
  day: string;
  customer?: CustomerRef;
  accepted: LedgerEntry[];
  unresolved: LedgerEntry[];
  api?: { quantity: number; count: number; reconStatus: string };
}

/**
 * The subsets of `quantities` with `count` members summing to `total`, as index lists; stops
 * after `limit` (2 is enough to know an explanation is not the only one).
 */
function _explanations(quantities: number[], count: number, total: number, limit = 2): number[][] {
  const found: number[][] = [];
  const pick: number[] = [];
  const walk = (from: number, left: number, rest: number) => {
    if (found.length >= limit) return;
    if (left === 0) {
      if (close(rest, 0)) found.push([...pick]);
      return;
    }
    for (let i = from; i <= quantities.length - left; i++) {
      pick.push(i);
      walk(i + 1, left - 1, rest - quantities[i]);
      pick.pop();
      if (found.length >= limit) return;
    }
  };
  if (count >= 0 && count <= quantities.length) walk(0, count, total);
  return found;
}

const quantityOf = (e: LedgerEntry) => e.billedQuantity ?? e.event.quantity;

/**
 * Compares the ledger with the API's rows for the period `[since, until]` (UTC days) and finds
 * the settlements. Pure. `customers` maps resource ids to config's customers (for API rows the
 * ledger has never seen); `only` limits everything to one customer; `nowMs` decides which open
 * events are past the API's 24-hour window (only those, and `unknown` ones, are settled: inside
 * the window a resend settles an event for sure).
 */
export function reconcileUsage(o: {
  entries: Iterable<LedgerEntry>;
  rows: UsageReportRow[];
  customers: Array<CustomerRef & { resourceId: string }>;
  since: string;
  until: string;
  nowMs: number;
  only?: CustomerRef & { resourceId: string };
}): ReconcileResult {
  const sinceMs = parseUtcDay(o.since)!;
  const untilEndMs = parseUtcDay(o.until)! + DAY_MS;
  const customerOf = new Map(o.customers.map((c) => [c.resourceId.toLowerCase(), { subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup }]));
  const groups = new Map<string, _Group>();
  const groupOf = (resourceId: string, dimension: string, day: string) => {
    const k = `${day}|${resourceId.toLowerCase()}|${dimension}`;
    let g = groups.get(k);
    if (!g) groups.set(k, g = { resourceId: resourceId.toLowerCase(), dimension, day, accepted: [], unresolved: [], customer: customerOf.get(resourceId.toLowerCase()) });
    return g;
  };
  const onlyId = o.only?.resourceId.toLowerCase();

  for (const e of o.entries) {
    const t = Date.parse(e.event.effectiveStartTime);
    if (t < sinceMs || t >= untilEndMs) continue;
    if (onlyId && e.event.resourceId.toLowerCase() !== onlyId) continue;
    if (e.state === "failed") continue;
    const g = groupOf(e.event.resourceId, e.event.dimension, dayOf(t));
    g.customer ??= e.customer;
    (e.state === "accepted" ? g.accepted : g.unresolved).push(e);
  }
  for (const r of o.rows) {
    const t = Date.parse(r.usageDate);
    if (Number.isNaN(t) || t < sinceMs || t >= untilEndMs) continue;
    if (onlyId && String(r.usageResourceId).toLowerCase() !== onlyId) continue;
    const g = groupOf(String(r.usageResourceId), String(r.dimension), dayOf(t));
    // Rows of several plans for one day are one day's usage; a flagged status wins.
    const status = g.api && (g.api.reconStatus === "Rejected" || g.api.reconStatus === "Mismatch") ? g.api.reconStatus : String(r.reconStatus);
    g.api = { quantity: (g.api?.quantity ?? 0) + Number(r.submittedQuantity), count: (g.api?.count ?? 0) + Number(r.submittedCount), reconStatus: status };
  }

  const lines: ReconcileLine[] = [];
  const settlements: Settlement[] = [];
  const unresolved: UnresolvedEvent[] = [];
  const settleable = (e: LedgerEntry) => e.state === "unknown" || hourStartMs(Date.parse(e.event.effectiveStartTime)) + USAGE_WINDOW_MS <= o.nowMs;
  const still = (e: LedgerEntry, reason: string) =>
    unresolved.push({ key: e.key, customer: e.customer, event: e.event, state: e.state as "open" | "unknown", reason });

  for (const g of [...groups.values()].sort((a, b) => a.day.localeCompare(b.day) || a.resourceId.localeCompare(b.resourceId) || a.dimension.localeCompare(b.dimension))) {
    const acceptedQuantity = sum(g.accepted.map(quantityOf));
    const acceptedCount = g.accepted.length;
    const api = g.api;
    const line: ReconcileLine = {
      ...(g.customer ? { customer: g.customer } : {}),
      resourceId: g.resourceId, dimension: g.dimension, day: g.day,
      ledgerQuantity: acceptedQuantity, ledgerCount: acceptedCount, unresolvedCount: g.unresolved.length,
      ...(api ? { apiQuantity: api.quantity, apiCount: api.count, reconStatus: api.reconStatus } : {}),
      verdict: "match",
    };
    lines.push(line);
    const apiCount = api?.count ?? 0;
    const apiQuantity = api?.quantity ?? 0;
    if (api && (api.reconStatus === "Rejected" || api.reconStatus === "Mismatch")) {
      line.verdict = api.reconStatus;
      line.note = api.reconStatus === "Mismatch"
        ? "the API reports submitted and processed quantities that differ; ask Microsoft support with the day's figures"
        : "the API rejected the day's usage; ask Microsoft support with the day's figures";
      for (const e of g.unresolved) still(e, `the API reports ${api.reconStatus} for its day`);
      continue;
    }
    if (g.unresolved.length === 0) {
      if (apiCount === acceptedCount && close(apiQuantity, acceptedQuantity)) continue;
      if (!g.customer) {
        line.verdict = "unknown to the ledger";
        line.note = "usage of a resource no customer in config.json has";
      } else if (apiCount > acceptedCount) {
        line.verdict = "unknown to the ledger";
        line.note = `the API has ${apiCount - acceptedCount} event(s), ${_n(apiQuantity - acceptedQuantity)} units, this audit log never recorded (another sender?)`;
      } else if (apiCount < acceptedCount) {
        line.verdict = "missing at Microsoft";
        line.note = `this audit log holds ${acceptedCount - apiCount} accepted event(s), ${_n(acceptedQuantity - apiQuantity)} units, the API does not report`;
      } else {
        line.verdict = "quantity differs";
        line.note = `same number of events, ${_n(apiQuantity)} units at the API against ${_n(acceptedQuantity)} in the audit log`;
      }
      continue;
    }

    // Events of unknown fate: which of them would make the ledger's figures the API's?
    const quantities = g.unresolved.map(quantityOf);
    const figures = `the API counts ${apiCount} event(s), ${_n(apiQuantity)} units for ${g.day}; the audit log holds ${acceptedCount} accepted (${_n(acceptedQuantity)} units) and ${g.unresolved.length} of unknown fate (${quantities.map(_n).join(", ")})`;
    const found = g.unresolved.length > MAX_SEARCHED_EVENTS ? [] : _explanations(quantities, apiCount - acceptedCount, apiQuantity - acceptedQuantity);
    if (found.length !== 1) {
      line.verdict = "unresolved";
      line.note = found.length === 0 ? `${figures}: no combination of them explains the difference` : `${figures}: more than one combination explains it`;
      for (const e of g.unresolved) still(e, line.note);
      continue;
    }
    const billedIdx = new Set(found[0]);
    const explanation = billedIdx.size === 0
      ? `${figures}: the accepted events alone make up the API's figures, so none of the others was billed`
      : `${figures}: only one combination of them makes up the difference (${[...billedIdx].map((i) => _n(quantities[i])).join(" + ")})`;
    g.unresolved.forEach((e, i) => {
      const billed = billedIdx.has(i);
      if (!settleable(e)) {
        still(e, `inside the API's 24-hour window: 2-emit-meter --resend settles it (${billed ? "the API's figures hold it" : "the API's figures do not hold it"})`);
        return;
      }
      const record = reconcileRecord({
        customer: e.customer, key: e.key,
        event: { resourceId: e.event.resourceId, resourceUri: e.event.resourceUri, dimension: e.event.dimension, quantity: e.event.quantity, effectiveStartTime: e.event.effectiveStartTime, planId: e.event.planId },
        settled: billed ? "billed" : "notBilled",
        evidence: { usageDate: g.day, submittedQuantity: apiQuantity, submittedCount: apiCount, reconStatus: api?.reconStatus ?? "(no row)", acceptedQuantity, acceptedCount, unresolvedCount: g.unresolved.length, explanation },
      });
      settlements.push({ key: e.key, customer: e.customer, event: e.event, billed, record });
      if (billed) {
        line.ledgerQuantity += quantityOf(e);
        line.ledgerCount++;
      }
    });
    line.note = explanation;
    if (unresolved.some((u) => g.unresolved.some((e) => e.key === u.key))) line.verdict = "unresolved";
  }
  return { since: o.since, until: o.until, lines, settlements, unresolved, ok: lines.every((l) => l.verdict === "match") && unresolved.length === 0 };
}

/**
 * A whole reconciliation: the ledger of the period from the audit log, the API's figures (as
 * the publisher app: `getToken`), the comparison, and one `reconcile` record appended per
 * settled event (`append`: the audit writer), so that the ledger reads them as settled from now on.
 */
export async function runReconciliation(o: {
  ledger: LedgerStore;
  client: UsageReportClient;
  getToken: () => Promise<string>;
  append: (record: ReconcileRecord) => Promise<void>;
  customers: Array<CustomerRef & { resourceId: string }>;
  since: string;
  until: string;
  nowMs: number;
  only?: CustomerRef & { resourceId: string };
  onProgress?: (step: { phase: "ledger" | "api" | "settle"; done: number; total: number }) => void;
}): Promise<ReconcileResult> {
  const sinceMs = parseUtcDay(o.since);
  const untilMs = parseUtcDay(o.until);
  if (sinceMs === undefined || untilMs === undefined || sinceMs > untilMs) throw new RangeError(`Cannot reconcile: expected since <= until as YYYY-MM-DD, got ${o.since} and ${o.until}`);
  o.onProgress?.({ phase: "ledger", done: 0, total: 1 });
  const ledger = await loadPeriodLedger({ store: o.ledger, sinceMs });
  o.onProgress?.({ phase: "ledger", done: 1, total: 1 });
  const rows = await fetchUsageReport({
    client: o.client, getToken: o.getToken, sinceMs, untilMs,
    ...(o.only ? { azureSubscriptionId: o.only.subscriptionId } : {}),
    onProgress: (done, total) => o.onProgress?.({ phase: "api", done, total }),
  });
  const result = reconcileUsage({ entries: ledger.entries.values(), rows, customers: o.customers, since: o.since, until: o.until, nowMs: o.nowMs, ...(o.only ? { only: o.only } : {}) });
  for (const [i, s] of result.settlements.entries()) {
    await o.append(s.record);
    o.onProgress?.({ phase: "settle", done: i + 1, total: result.settlements.length });
  }
  return result;
}

function _n(q: number): string {
  return String(Math.round(q * 1e9) / 1e9);
}
