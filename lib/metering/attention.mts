// What needs a person after a run, or in the ledger now: events refused for good, events whose
// fate is unknown (sent without an answer, now past settling by a resend), and events still
// open (no final answer yet) whose hour leaves the API's 24-hour window within a margin, after
// which no resend can settle them. An hourly job cannot fix any of these by running again; a
// person can (fix a dimension, check Partner Center, rerun before the hour is gone). Pure.
import { USAGE_WINDOW_MS, isoSeconds } from "./time.mts";
import type { Ledger, LedgerEntry } from "./ledger.mts";
import type { EventReport } from "./submission.mts";
import type { RowProblem } from "./usage-file.mts";
import type { UsageEvent } from "./api.mts";
import type { CustomerRef } from "../state/customers.mts";

/** How long before an open event's hour leaves the window it counts as needing a person, unless a run says otherwise. */
export const DEFAULT_WARN_BEFORE_MS = 3 * 3_600_000;

/** One event that needs a person. */
export interface AttentionItem {
  subscriptionId: string;
  managedResourceGroup: string;
  dimension: string;
  effectiveStartTime: string;
  quantity: number;
  status: string;
  message?: string;
  /** When the event's hour leaves the API's window (ISO 8601): after that no resend can settle it. */
  leavesWindowAt: string;
}

export interface Attention {
  needsPerson: boolean;
  counts: { failed: number; unknown: number; expiring: number; skipped: number };
  /** Refused for good (InvalidDimension, Expired, Conflict, NotSent …): not billed unless a person acts. */
  failed: AttentionItem[];
  /** Sent without an answer and no longer settled by a resend: it may have been billed. */
  unknown: AttentionItem[];
  /** Open (no final answer yet), its hour leaving the window within the margin. */
  expiring: AttentionItem[];
  /** Rows of the input that were not sent (bad rows, with --skip-invalid). */
  skipped: RowProblem[];
}

function _item(customer: CustomerRef, event: UsageEvent, status: string, message?: string): AttentionItem {
  return {
    subscriptionId: customer.subscriptionId, managedResourceGroup: customer.managedResourceGroup,
    dimension: event.dimension, effectiveStartTime: event.effectiveStartTime, quantity: event.quantity, status,
    ...(message ? { message } : {}),
    leavesWindowAt: isoSeconds(Date.parse(event.effectiveStartTime) + USAGE_WINDOW_MS),
  };
}

function _attention(failed: AttentionItem[], unknown: AttentionItem[], expiring: AttentionItem[], skipped: RowProblem[]): Attention {
  return {
    needsPerson: failed.length + unknown.length + expiring.length + skipped.length > 0,
    counts: { failed: failed.length, unknown: unknown.length, expiring: expiring.length, skipped: skipped.length },
    failed, unknown, expiring, skipped,
  };
}

/** Whether an open event's hour leaves the window within `warnBeforeMs` of `now` (or has left it). */
function _expiring(event: UsageEvent, now: number, warnBeforeMs: number): boolean {
  return Date.parse(event.effectiveStartTime) + USAGE_WINDOW_MS - now <= warnBeforeMs;
}

/**
 * What a run's reports leave for a person. Only this run's events count: an unknown of an
 * earlier run was that run's to report (and the doctor keeps listing it), so an hourly job does
 * not raise the same alarm every hour.
 *
 * @example
 * const attention = attentionOfRun({ reports, skipped: problems, now: Date.now(), warnBeforeMs: DEFAULT_WARN_BEFORE_MS });
 * if (attention.needsPerson) await postWebhook(url, notificationBody(attention, { time: new Date() }));
 */
export function attentionOfRun(o: { reports: EventReport[]; skipped: RowProblem[]; now: number; warnBeforeMs: number }): Attention {
  const failed: AttentionItem[] = [], unknown: AttentionItem[] = [], expiring: AttentionItem[] = [];
  for (const r of o.reports) {
    if (r.ok) continue;
    const item = _item(r.customer, r.event, r.status, r.message);
    if (r.status === "Unknown" || r.state === "unknown") unknown.push(item);
    else if (r.state === "open") {
      // No final answer: the next run resends it, unless its hour is about to leave the window.
      if (_expiring(r.event, o.now, o.warnBeforeMs)) expiring.push(item);
    } else failed.push(item);
  }
  return _attention(failed, unknown, expiring, o.skipped);
}

/**
 * What the ledger holds for a person now (the doctor's `--usage` check, which sends nothing):
 * events refused for good whose hour is still in the window (a fixed resend can still bill
 * them), unknown events, and open events whose hour leaves the window within the margin.
 */
export function attentionOfLedger(o: { ledger: Ledger; now: number; warnBeforeMs: number }): Attention {
  const failed: AttentionItem[] = [], unknown: AttentionItem[] = [], expiring: AttentionItem[] = [];
  const inWindow = (e: LedgerEntry) => o.now - Date.parse(e.event.effectiveStartTime) < USAGE_WINDOW_MS;
  for (const e of o.ledger.entries.values()) {
    if (e.state === "failed" && inWindow(e)) failed.push(_item(e.customer, e.event, e.status));
    else if (e.state === "unknown" || (e.state === "open" && !inWindow(e))) unknown.push(_item(e.customer, e.event, e.status));
    else if (e.state === "open" && _expiring(e.event, o.now, o.warnBeforeMs)) expiring.push(_item(e.customer, e.event, e.status));
  }
  return _attention(failed, unknown, expiring, []);
}

/** Items per list a notification carries: a Teams message holds about 28 KB. */
const LIST_LIMIT = 50;

/**
 * The JSON a webhook receives (documented in the README, "Raising the alarm"): `text` for chat
 * webhooks that show only that (Slack, Teams), and the lists, each cut at 50 with its full count
 * in `counts`.
 */
export function notificationBody(a: Attention, o: { time: Date; host?: string; dataDir?: string }): Record<string, unknown> {
  const parts = [
    a.counts.failed ? `${a.counts.failed} event(s) refused` : "",
    a.counts.unknown ? `${a.counts.unknown} event(s) of unknown fate (check Partner Center before billing them again)` : "",
    a.counts.expiring ? `${a.counts.expiring} open event(s) leaving the API's window soon` : "",
    a.counts.skipped ? `${a.counts.skipped} input row(s) not sent` : "",
  ].filter(Boolean);
  return {
    type: "metering.attention",
    version: 1,
    text: `Marketplace metering needs a person${o.host ? ` (${o.host})` : ""}: ${parts.join("; ")}.`,
    time: o.time.toISOString(),
    ...(o.host ? { host: o.host } : {}),
    ...(o.dataDir ? { dataDir: o.dataDir } : {}),
    counts: a.counts,
    failed: a.failed.slice(0, LIST_LIMIT),
    unknown: a.unknown.slice(0, LIST_LIMIT),
    expiring: a.expiring.slice(0, LIST_LIMIT),
    skipped: a.skipped.slice(0, LIST_LIMIT),
  };
}
