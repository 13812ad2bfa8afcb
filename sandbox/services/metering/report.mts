// GET /api/usageEvents (docs/azure-behaviour.md §1.6): accepted events summed per UTC day, resource,
// dimension and plan, filtered by the query. Every row is "Submitted" with processedQuantity 0:
// the sandbox never reconciles, as a freshly recorded real row looks.
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
export function usageReport(state: SandboxState, events: AcceptedEvent[], url: URL): UsageReportRow[] {
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
  for (const e of events) {
    const day = utcDayOf(parseUtcTime(e.effectiveStartTime) ?? 0);
    if (day < fromDay || day > toDay) continue;
    // Events of an app deleted since have nothing left to report them under.
    const app = state.getResource(e.resourceUri);
    if (!app) continue;
    const offerId = String((app.plan as { product?: string } | undefined)?.product ?? "");
    if (filters.offerId && filters.offerId !== offerId) continue;
    if (filters.planId && filters.planId !== e.planId) continue;
    if (filters.dimension && filters.dimension !== e.dimension) continue;
    if (filters.azureSubscriptionId && filters.azureSubscriptionId !== app.subscriptionId.toLowerCase()) continue;
    if (reconStatus && reconStatus !== "Submitted") continue;
    const key = [day, e.resourceId, e.dimension, e.planId].join("\n");
    let row = rows.get(key);
    if (!row) {
      row = {
        usageDate: new Date(day).toISOString().replace(/\.000Z$/, "Z"),
        usageResourceId: e.resourceId,
        dimension: e.dimension,
        planId: e.planId,
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
    row.submittedQuantity += e.quantity;
    row.submittedCount++;
  }
  return [...rows.values()].sort((a, b) =>
    a.usageDate.localeCompare(b.usageDate) || a.usageResourceId.localeCompare(b.usageResourceId) ||
    a.dimension.localeCompare(b.dimension) || a.planId.localeCompare(b.planId));
}
