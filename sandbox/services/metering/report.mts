// GET /api/usageEvents (docs/azure-behaviour.md §1.6): accepted events summed per UTC day, resource,
// dimension and plan, filtered by the query. Every row is "Submitted" with processedQuantity 0:
// the sandbox never reconciles, as a freshly recorded real row looks. The admin API's report
// overrides (`POST /metering/report-overrides`) make a day's figures disagree with what was sent:
// another quantity or count (an event missing at Microsoft), a row nobody here sent (another
// sender), a reconStatus such as Mismatch or Rejected.
import type { SandboxState } from "../../core/state.mts";
import { parseUtcTime, UsageInputError, utcDayOf, type AcceptedEvent } from "./usage.mts";

export const RECON_STATUSES = ["Submitted", "Accepted", "Rejected", "Mismatch", "TestHeaders", "DryRun"];

export interface UsageReportRow {
  usageDate: string;
  usageResourceId: string;
  dimension: string;
  planId: string;
  planName: string;
  offerId: string;
  offerName: string;
  offerType: string;
  azureSubscriptionId: string;
  reconStatus: string;
  submittedQuantity: number;
  processedQuantity: number;
  submittedCount: number;
}

/** One row's figures replaced (or a row added) by the admin API; undefined fields keep what was sent. */
export interface ReportOverride {
  /** The UTC day, `YYYY-MM-DD`. */
  usageDate: string;
  resourceId: string;
  dimension: string;
  /** Default: the plan of the resource's app. */
  planId?: string;
  submittedQuantity?: number;
  submittedCount?: number;
  processedQuantity?: number;
  reconStatus?: string;
}

/** The overrides in force, in the order they were added (a later one for the same row wins). */
export function reportOverrides(state: SandboxState): ReportOverride[] {
  return state.store<ReportOverride[]>("metering.reportOverrides", () => []);
}

/** Checks an override as the admin API receives it; throws TypeError with what is wrong. */
export function readReportOverride(raw: unknown): ReportOverride {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new TypeError("An override must be a JSON object.");
  const o = raw as Record<string, unknown>;
  if (typeof o.usageDate !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(o.usageDate) || parseUtcTime(o.usageDate) === undefined) {
    throw new TypeError("'usageDate' must be a date YYYY-MM-DD.");
  }
  for (const k of ["resourceId", "dimension"]) if (typeof o[k] !== "string" || o[k] === "") throw new TypeError(`'${k}' must be a non-empty string.`);
  if (o.planId !== undefined && typeof o.planId !== "string") throw new TypeError("'planId' must be a string.");
  for (const k of ["submittedQuantity", "submittedCount", "processedQuantity"]) {
    if (o[k] !== undefined && (typeof o[k] !== "number" || !Number.isFinite(o[k]) || (o[k] as number) < 0)) throw new TypeError(`'${k}' must be a number >= 0.`);
  }
  if (o.submittedCount !== undefined && !Number.isInteger(o.submittedCount)) throw new TypeError("'submittedCount' must be a whole number.");
  if (o.reconStatus !== undefined && !RECON_STATUSES.includes(o.reconStatus as string)) throw new TypeError(`'reconStatus' must be one of ${RECON_STATUSES.join(", ")}.`);
  const known = new Set(["usageDate", "resourceId", "dimension", "planId", "submittedQuantity", "submittedCount", "processedQuantity", "reconStatus"]);
  const extra = Object.keys(o).find((k) => !known.has(k));
  if (extra) throw new TypeError(`Unknown field '${extra}'.`);
  return o as unknown as ReportOverride;
}

/** Query parameters as ASP.NET binds them: names case-insensitive (the docs spell `UsageEndDate` with a capital U). */
export function queryParam(url: URL, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of url.searchParams) if (k.toLowerCase() === want) return v;
  return undefined;
}

function _day(url: URL, name: string, fallbackMs: number | undefined): number {
  const text = queryParam(url, name);
  if (text === undefined || text === "") {
    if (fallbackMs === undefined) throw new UsageInputError(name, `The ${name} is required.`);
    return utcDayOf(fallbackMs);
  }
  const ms = parseUtcTime(text);
  if (ms === undefined) throw new UsageInputError(name, `The value '${text}' is not a valid date.`);
  return utcDayOf(ms);
}

/**
 * The report rows for `events` (already limited to what the caller may see). Dates compare by
 * UTC day: rows from the day of usageStartDate through the day of UsageEndDate (inclusive;
 * default today on the sandbox clock). Throws UsageInputError for a missing or bad parameter.
 */
export function usageReport(state: SandboxState, events: AcceptedEvent[], url: URL, mayRead: (managedAppId: string) => boolean = () => true): UsageReportRow[] {
  const fromDay = _day(url, "usageStartDate", undefined);
  const toDay = _day(url, "UsageEndDate", state.now());
  const reconStatus = queryParam(url, "reconStatus");
  if (reconStatus && !RECON_STATUSES.includes(reconStatus)) {
    throw new UsageInputError("reconStatus", `The reconStatus must be one of ${RECON_STATUSES.join(", ")}.`);
  }
  const filters = {
    offerId: queryParam(url, "offerId"),
    planId: queryParam(url, "planId"),
    dimension: queryParam(url, "dimension"),
    azureSubscriptionId: queryParam(url, "azureSubscriptionId")?.toLowerCase(),
  };

  const rows = new Map<string, UsageReportRow>();
  const keyOf = (day: number, resourceId: string, dimension: string, planId: string) => [day, resourceId.toLowerCase(), dimension, planId].join("\n");
  /** The row of (day, resource, dimension, plan), made on first use; undefined when a filter drops it. */
  const rowOf = (day: number, resourceId: string, dimension: string, planId: string, app: NonNullable<ReturnType<SandboxState["getResource"]>>) => {
    const offerId = String((app.plan as { product?: string } | undefined)?.product ?? "");
    if (filters.offerId && filters.offerId !== offerId) return undefined;
    if (filters.planId && filters.planId !== planId) return undefined;
    if (filters.dimension && filters.dimension !== dimension) return undefined;
    if (filters.azureSubscriptionId && filters.azureSubscriptionId !== app.subscriptionId.toLowerCase()) return undefined;
    const key = keyOf(day, resourceId, dimension, planId);
    let row = rows.get(key);
    if (!row) {
      row = {
        usageDate: new Date(day).toISOString().replace(/\.000Z$/, "Z"),
        usageResourceId: resourceId,
        dimension,
        planId,
        planName: "", // as recorded for a Submitted row (recorded traffic)
        offerId,
        offerName: offerId,
        offerType: "", // managed apps (unconfirmed → "")
        azureSubscriptionId: app.subscriptionId,
        reconStatus: "Submitted",
        submittedQuantity: 0,
        processedQuantity: 0,
        submittedCount: 0,
      };
      rows.set(key, row);
    }
    return row;
  };
  for (const e of events) {
    const day = utcDayOf(parseUtcTime(e.effectiveStartTime) ?? 0);
    if (day < fromDay || day > toDay) continue;
    // Events of an app deleted since have nothing left to report them under.
    const app = state.getResource(e.resourceUri);
    if (!app) continue;
    const row = rowOf(day, e.resourceId, e.dimension, e.planId, app);
    if (!row) continue;
    row.submittedQuantity += e.quantity;
    row.submittedCount++;
  }
  for (const o of reportOverrides(state)) {
    const day = utcDayOf(parseUtcTime(o.usageDate) ?? 0);
    if (day < fromDay || day > toDay) continue;
    const app = state.appsByResourceUsageId(o.resourceId)[0];
    if (!app || !mayRead(app.id)) continue;
    const planId = o.planId ?? String((app.plan as { name?: string } | undefined)?.name ?? "");
    const row = rowOf(day, o.resourceId, o.dimension, planId, app);
    if (!row) continue;
    if (o.submittedQuantity !== undefined) row.submittedQuantity = o.submittedQuantity;
    if (o.submittedCount !== undefined) row.submittedCount = o.submittedCount;
    if (o.processedQuantity !== undefined) row.processedQuantity = o.processedQuantity;
    if (o.reconStatus !== undefined) row.reconStatus = o.reconStatus;
    // A row with nothing submitted is no row (an event the API lost).
    if (row.submittedCount === 0 && row.submittedQuantity === 0) rows.delete(keyOf(day, o.resourceId, o.dimension, planId));
  }
  if (reconStatus) for (const [k, row] of rows) if (row.reconStatus !== reconStatus) rows.delete(k);
  return [...rows.values()].sort((a, b) =>
    a.usageDate.localeCompare(b.usageDate) || a.usageResourceId.localeCompare(b.usageResourceId) ||
    a.dimension.localeCompare(b.dimension) || a.planId.localeCompare(b.planId));
}
