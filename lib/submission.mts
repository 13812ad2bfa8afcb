// Exactly-once submission of usage events: decide what to send from the audit log (the
// ledger), then per customer take one federated token, send in batches of at most 25, and
// write each batch's intent (fsynced) before sending and its outcome after. Customers run
// concurrently up to a bound. The caller holds the data directory's run lock.
import { randomUUID } from "node:crypto";
import { createAuditWriter, type AuditWriter } from "./audit.mts";
import { AuditWriteError, describeWriteError } from "./errors.mts";
import { findCustomer, type CustomerConfig, type MeteringConfig } from "./config.mts";
import { Ledger, resultOf, usageKey, type CustomerRef, type EventResult, type EventState, type LedgerEntry, type RunInput } from "./ledger.mts";
import { describeUsageRequest, effectiveStartTime, MAX_BATCH_SIZE, type MeteringClient, type UsageEvent, type UsageOutcome, type UsageRequestDescription } from "./metering.mts";
import { USAGE_WINDOW_MS, type RowProblem, type UsageRow } from "./usage-file.mts";
import type { FederatedToken } from "./federation.mts";

/** One event to send, from an input row or from an earlier run's unconfirmed intent. */
export interface WorkItem {
  event: UsageEvent;
  customer: CustomerRef;
  key: string;
  /** Input line, when the event comes from the input. */
  line?: number;
  /** True when an earlier run sent (or meant to send) this event without learning its fate. */
  resend?: boolean;
  /** For a resend: when the first unanswered send was recorded. */
  sentAt?: string;
}

/** What became of one event. */
export interface EventReport {
  key: string;
  line?: number;
  customer: CustomerRef;
  event: UsageEvent;
  /**
   * Accepted, Duplicate (same quantity: fine), AlreadyAccepted (the audit log says so; not
   * sent), Conflict (the API holds another quantity for this hour), an API status (Expired,
   * InvalidDimension, …), Unconfirmed (no answer; resent next run), Unknown (sent without an
   * answer and now past settling by a resend: it may have been billed), NotSent (no token, or
   * the audit log could not record the intent).
   */
  status: string;
  ok: boolean;
  /** Whether this run sent it. */
  sent: boolean;
  resend?: boolean;
  state?: EventState;
  billedQuantity?: number;
  message?: string;
  /** From the API's answer, when there was one. */
  httpStatus?: number;
  usageEventId?: string;
  /** For a Duplicate: the event the API accepted first. */
  original?: Record<string, unknown>;
  requestId?: string;
  correlationId?: string;
}

export interface SubmissionPlan {
  work: WorkItem[];
  /** Rows reported without a call: already accepted, a known conflict, or Unknown (below). */
  settled: EventReport[];
  /**
   * Earlier runs' events that no row names, sent without a known fate, that a resend can no
   * longer settle (past the 24-hour window, or the customer is gone): Unknown, they may have
   * been billed. `--resend` reports them; other runs only mention them.
   */
  unknown: EventReport[];
  /** Rows that name the same customer, dimension and hour as an earlier row. */
  duplicateRows: RowProblem[];
  /** Rows whose customer is not connected. */
  unknownCustomers: RowProblem[];
}

/** Lower-cased "subscription/mrg": one group of events, one token. */
export function customerKey(c: CustomerRef): string {
  return `${c.subscriptionId.toLowerCase()}/${c.managedResourceGroup.toLowerCase()}`;
}

/**
 * Decides what to send. Pure apart from `now`.
 * - A row whose key the API already holds with the same quantity is AlreadyAccepted (not sent),
 *   with another quantity a Conflict (not sent), unless `force`.
 * - An earlier run's event whose fate is not known (open, or unknown after a refused resend) is
 *   sent again as it was recorded, while inside the API's window; a row for the same hour with
 *   another quantity is a Conflict (the earlier quantity may already be billed).
 * - Such events no input row mentions are sent again too; past the window (or with the
 *   customer gone) each is Unknown (`unknown`): it may have been billed.
 */
export function planSubmission(options: {
  rows: UsageRow[];
  config: MeteringConfig;
  ledger: Ledger;
  force?: boolean;
  now?: number;
}): SubmissionPlan {
  const now = options.now ?? Date.now();
  const plan: SubmissionPlan = { work: [], settled: [], unknown: [], duplicateRows: [], unknownCustomers: [] };
  const seenRows = new Map<string, number>();
  const planned = new Set<string>();
  const inWindow = (e: UsageEvent) => {
    const age = now - Date.parse(e.effectiveStartTime);
    return age >= 0 && age < USAGE_WINDOW_MS;
  };

  for (const row of options.rows) {
    const found = findCustomer(options.config, row);
    const customer = found?.customer as CustomerConfig | undefined;
    if (!found || !customer?.billing?.resourceId) {
      plan.unknownCustomers.push({ line: row.line, message: `customer ${row.subscriptionId}/${row.managedResourceGroup} is not connected (run 1-connect-customer first)` });
      continue;
    }
    const ref = { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup };
    const event: UsageEvent = {
      resourceId: customer.billing.resourceId,
      resourceUri: customer.billing.resourceUri,
      planId: customer.planName,
      dimension: row.dimension,
      quantity: row.quantity,
      effectiveStartTime: row.effectiveStartTime,
    };
    const key = usageKey(event);
    const first = seenRows.get(key);
    if (first !== undefined) {
      plan.duplicateRows.push({ line: row.line, message: `same customer, dimension and hour as line ${first}: the API keeps one event per hour, so add the quantities into one row` });
      continue;
    }
    seenRows.set(key, row.line);
    const entry = options.ledger.get(key);
    const item: WorkItem = { event, customer: ref, key, line: row.line };
    if (options.force || !entry || entry.state === "failed") {
      plan.work.push(item);
      planned.add(key);
      continue;
    }
    if (entry.state === "accepted") {
      const billed = entry.billedQuantity ?? entry.event.quantity;
      const same = billed === row.quantity;
      plan.settled.push({
        key, line: row.line, customer: ref, event, sent: false, state: "accepted", billedQuantity: billed,
        status: same ? "AlreadyAccepted" : "Conflict",
        ok: same,
        message: same
          ? `accepted earlier (${entry.time}); not sent again`
          : `the API already holds quantity ${billed} for this hour (recorded ${entry.time}); ${row.quantity} cannot be billed for it: bill the difference in another hour`,
      });
      continue;
    }
    // Open or unknown: an earlier run's event whose fate is not known. Send what that run
    // meant to send, while a resend can still settle it.
    planned.add(key);
    if (!inWindow(entry.event)) {
      plan.settled.push(unknownReport(entry, { line: row.line, reason: "window" }));
      continue;
    }
    plan.work.push({ event: entry.event, customer: entry.customer, key, line: row.line, resend: true, ...(entry.sentAt ? { sentAt: entry.sentAt } : {}) });
    if (entry.event.quantity !== row.quantity) {
      plan.settled.push({
        key, line: row.line, customer: ref, event, sent: false, status: "Conflict", ok: false,
        message: `an earlier run (${entry.time}) sent quantity ${entry.event.quantity} for this hour without learning the outcome; that event is resent and ${row.quantity} is not sent`,
      });
    }
  }

  for (const entry of options.ledger.unresolved()) {
    if (planned.has(entry.key)) continue;
    if (!inWindow(entry.event)) plan.unknown.push(unknownReport(entry, { reason: "window" }));
    else if (!findCustomer(options.config, entry.customer)) plan.unknown.push(unknownReport(entry, { reason: "customer" }));
    else plan.work.push({ event: entry.event, customer: entry.customer, key: entry.key, resend: true, ...(entry.sentAt ? { sentAt: entry.sentAt } : {}) });
  }
  return plan;
}

/**
 * The report of an event sent without a known fate that no resend can settle now: the API may
 * hold it from the first send, so it is neither billed nor "not billed" until reconciled.
 */
export function unknownReport(entry: LedgerEntry, options: { line?: number; reason: "window" | "customer" }): EventReport {
  const refused = entry.state === "unknown" ? `; a resend was refused (${entry.status})` : "";
  const why = options.reason === "window" ? "now past the API's window" : "the customer is no longer connected";
  return {
    key: entry.key, ...(options.line !== undefined ? { line: options.line } : {}), customer: entry.customer, event: entry.event,
    status: "Unknown", ok: false, sent: false, resend: true, state: entry.state,
    message: `sent at ${entry.sentAt ?? entry.time}, no answer${refused}, ${why}; it may have been billed: check Partner Center before billing it again`,
  };
}

/**
 * The instant a run counts its rows' hours-ago from. Normally `now`; but when an earlier run
 * of the same input (same digest) left events unresolved and its instant is still inside the
 * API's window, that earlier instant: the rerun then finishes that run (its rows resolve to
 * the hours it sent) instead of billing the same rows again for the current hours. A run of
 * the same input after a finished run keeps its own instant (an hourly job bills each hour).
 */
export function resolveRunInstant(options: { ledger: Ledger; digest: string; now: number }): { input: RunInput; resumed: boolean } {
  const earlier = options.ledger.unfinishedRun(options.digest);
  if (earlier && options.now - Date.parse(earlier.resolvedAt) < USAGE_WINDOW_MS) return { input: earlier, resumed: true };
  return { input: { digest: options.digest, resolvedAt: new Date(options.now).toISOString() }, resumed: false };
}

/** Rows with their hours-ago counted from another instant; rows with an absolute time stay as they are. Pure. */
export function resolveRowsAt(rows: UsageRow[], instant: string): UsageRow[] {
  const now = Date.parse(instant);
  return rows.map((row) => (row.hoursAgo === undefined ? row : { ...row, effectiveStartTime: effectiveStartTime({ hoursAgo: row.hoursAgo, now }) }));
}

export interface SubmissionProgress {
  eventsDone: number;
  eventsTotal: number;
  customersDone: number;
  customersTotal: number;
}

export interface RunSubmissionOptions {
  work: WorkItem[];
  config: MeteringConfig;
  auditPath: string;
  client: MeteringClient;
  /** A federated token for a customer (cached by the caller's token source). */
  getToken(customer: CustomerConfig, ref: CustomerRef): Promise<FederatedToken>;
  /** `batch` (batchUsageEvent, up to 25 per call) or `single` (usageEvent, one per call). */
  mode?: "batch" | "single";
  batchSize?: number;
  /** Customers in flight at once; default 8. */
  concurrency?: number;
  /** This run's input, recorded in every intent so that a rerun of it can finish this run. */
  input?: RunInput;
  onProgress?: (progress: SubmissionProgress) => void;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function forEachConcurrently<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function _chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Per-event outcomes of a batch the API refused as a whole, or answered without results. */
function _wholeBatchOutcomes(events: UsageEvent[], answer: { httpStatus: number; requestId?: string; correlationId?: string }): UsageOutcome[] {
  const { httpStatus } = answer;
  return events.map((event) => ({
    // A 200 without a usable result array: the fate is unknown (status Error → open).
    status: httpStatus === 401 || httpStatus === 403 ? "Forbidden" : httpStatus === 400 ? "BadArgument" : "Error",
    ok: false, httpStatus, event, body: null, requestId: answer.requestId, correlationId: answer.correlationId,
  }));
}

function _report(item: WorkItem, result: EventResult, extra: { message?: string; outcome?: UsageOutcome } = {}): EventReport {
  const { event } = item;
  let status = result.status;
  let ok = false;
  let message = extra.message;
  if (result.status === "Accepted") ok = true;
  else if (result.status === "Duplicate") {
    ok = result.billedQuantity === event.quantity;
    if (!ok) {
      status = "Conflict";
      message = `the API kept an earlier event with quantity ${result.billedQuantity ?? "unknown"} for this hour; ${event.quantity} was not billed: bill the difference in another hour`;
    }
  } else if (result.state === "unknown") {
    // A resend refused for good says nothing about the first send: never "not billed".
    status = "Unknown";
    const past = result.status === "Expired" ? ", now past the API's window" : "";
    message = `sent at ${item.sentAt ?? "an earlier run"}, no answer; this resend was refused (${result.status})${past}; it may have been billed: check Partner Center before billing it again${extra.message ? ` (the API said: ${extra.message})` : ""}`;
  } else if (result.state === "open") {
    message ??= "no final answer; sent again on the next run (safe: the API detects duplicates)";
  }
  const o = extra.outcome;
  const usageEventId = o?.accepted?.usageEventId;
  return {
    key: item.key, line: item.line, customer: item.customer, event, status, ok, sent: true,
    resend: item.resend, state: result.state, billedQuantity: result.billedQuantity, ...(message ? { message } : {}),
    ...(o ? { httpStatus: o.httpStatus, requestId: o.requestId, correlationId: o.correlationId } : {}),
    ...(typeof usageEventId === "string" ? { usageEventId } : {}),
    ...(o?.original ? { original: o.original } : {}),
  };
}

/** A report for an event this run did not send. */
function _notSent(item: WorkItem, message: string): EventReport {
  return { key: item.key, line: item.line, customer: item.customer, event: item.event, status: "NotSent", ok: false, sent: false, resend: item.resend, message };
}

const _batches = (n: number, events: number) => `${n} batch${n === 1 ? "" : "es"} (${events} event${events === 1 ? "" : "s"})`;

/**
 * Sends the planned work; every event gets exactly one report. When the audit log cannot
 * record an intent, that batch is not sent and no further batch is (of any customer); the
 * batches already in flight finish. Then it throws AuditWriteError saying exactly what this
 * run sent and recorded, sent without recording its outcome, and did not send.
 */
export async function runSubmission(options: RunSubmissionOptions): Promise<EventReport[]> {
  const mode = options.mode ?? "batch";
  const size = mode === "single" ? 1 : Math.min(options.batchSize ?? MAX_BATCH_SIZE, MAX_BATCH_SIZE);
  const groups = new Map<string, WorkItem[]>();
  for (const item of options.work) {
    const k = customerKey(item.customer);
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(item);
  }
  const reports: EventReport[] = [];
  const progress: SubmissionProgress = { eventsDone: 0, eventsTotal: options.work.length, customersDone: 0, customersTotal: groups.size };
  const tally = { recorded: [0, 0], unrecorded: [0, 0] };
  let auditFailure: { error: AuditWriteError; stage: "intent" | "outcome" } | undefined;
  const writer: AuditWriter = await createAuditWriter({ path: options.auditPath });
  try {
    await forEachConcurrently([...groups.values()], options.concurrency ?? 8, async (items) => {
      const ref = items[0].customer;
      const customer = findCustomer(options.config, ref)?.customer as CustomerConfig;
      for (const chunk of _chunks(items, size)) {
        const rest = items.slice(items.indexOf(chunk[0]));
        const skipRest = () => {
          const message = `not sent: the audit log could not record ${auditFailure!.stage === "intent" ? "an intent" : "an outcome"} (${describeWriteError(auditFailure!.error.cause)})`;
          for (const item of rest) reports.push(_notSent(item, message));
          progress.eventsDone += rest.length;
        };
        if (auditFailure) {
          skipRest();
          break;
        }
        let token: FederatedToken;
        try {
          token = await options.getToken(customer, ref);
        } catch (error) {
          // Nothing was sent: no intent, no outcome; the events stay as they were.
          const message = String((error as Error)?.message ?? error);
          for (const item of rest) reports.push(_notSent(item, message));
          progress.eventsDone += rest.length;
          options.onProgress?.({ ...progress });
          break;
        }
        let sent: { reports: EventReport[]; recorded: boolean; outcomeError?: AuditWriteError };
        try {
          sent = await _sendChunk(chunk, { ...options, mode, writer, token });
        } catch (error) {
          if (!(error instanceof AuditWriteError)) throw error;
          // The intent is not durable, so this batch was not sent; nor will any other be.
          auditFailure ??= { error, stage: "intent" };
          skipRest();
          break;
        }
        reports.push(...sent.reports);
        const counter = sent.recorded ? tally.recorded : tally.unrecorded;
        counter[0]++;
        counter[1] += chunk.length;
        if (!sent.recorded) auditFailure ??= { error: sent.outcomeError!, stage: "outcome" };
        progress.eventsDone += chunk.length;
        options.onProgress?.({ ...progress });
      }
      progress.customersDone++;
      options.onProgress?.({ ...progress });
    });
  } finally {
    await writer.close();
  }
  if (auditFailure) {
    const { error, stage } = auditFailure;
    const [rb, re] = tally.recorded;
    const [ub, ue] = tally.unrecorded;
    const parts = [
      `Cannot write the ${stage} to ${error.path}: ${describeWriteError(error.cause)}`,
      `${_batches(rb, re)} ${rb === 1 ? "was" : "were"} sent and recorded in this run`,
      ...(ub > 0 ? [`${_batches(ub, ue)} ${ub === 1 ? "was" : "were"} sent without a recorded outcome (free space, then run 2-emit-meter.mts --resend: the API's duplicate rule makes resending safe)`] : []),
      "nothing else was sent",
    ];
    throw new AuditWriteError(parts.join("; "), { path: error.path, cause: error.cause, ...(error.errno ? { errno: error.errno } : {}) });
  }
  return reports;
}

async function _sendChunk(
  chunk: WorkItem[],
  options: RunSubmissionOptions & { mode: "batch" | "single"; writer: AuditWriter; token: FederatedToken },
): Promise<{ reports: EventReport[]; recorded: boolean; outcomeError?: AuditWriteError }> {
  const id = randomUUID();
  const events = chunk.map((i) => i.event);
  const batch = options.mode === "batch";
  const request: UsageRequestDescription = batch ? describeUsageRequest({ events }) : describeUsageRequest({ event: events[0] });
  const operation = batch ? "batchUsageEvent" : "usageEvent";
  const customer = chunk[0].customer;
  // The intent is on disk (every byte, fsynced) before the request leaves: a crash from here
  // on leaves an intent without an outcome, and the next run sends these events again. If it
  // cannot be made durable, this throws and nothing is sent.
  await options.writer.append({ operation: `${operation}.intent`, id, customer, request, ...(options.input ? { input: options.input } : {}) });
  let results: EventResult[];
  let outcomes: UsageOutcome[] | undefined;
  let response: { status: number; requestId?: string; correlationId?: string; body: unknown } | undefined;
  let failure: string | undefined;
  let thrown: unknown;
  try {
    if (batch) {
      const answer = await options.client.submitUsageBatch({ events, request, accessToken: options.token.token });
      response = { status: answer.httpStatus, requestId: answer.requestId, correlationId: answer.correlationId, body: answer.body };
      const whole = answer.results.length !== events.length;
      outcomes = whole ? _wholeBatchOutcomes(events, answer) : answer.results;
      results = outcomes.map((o, i) => resultOf(o, { resend: chunk[i].resend }));
      if (whole) failure = `the API answered the batch as a whole (HTTP ${answer.httpStatus})${answer.error?.message ? `: ${answer.error.message}` : ""}`;
    } else {
      const answer = await options.client.submitUsageEvent({ event: events[0], request, accessToken: options.token.token });
      response = { status: answer.httpStatus, requestId: answer.requestId, correlationId: answer.correlationId, body: answer.body };
      outcomes = [answer];
      results = [resultOf(answer, { resend: chunk[0].resend })];
    }
  } catch (error) {
    thrown = error;
    failure = String((error as Error)?.message ?? error);
    results = events.map((e) => ({ key: usageKey(e), status: "Unconfirmed", state: "open" as const }));
  }
  const outcome = thrown === undefined
    ? { operation, id, customer, request, tokenClaims: options.token.claims, response, events: results }
    : { operation, id, customer, request, tokenClaims: options.token.claims, events: results, error: { code: (thrown as { code?: string }).code, message: failure } };
  let outcomeError: AuditWriteError | undefined;
  try {
    await options.writer.append(outcome);
  } catch (error) {
    if (!(error instanceof AuditWriteError)) throw error;
    // Sent, but the log does not say how it ended: the event stays open, and a resend settles it.
    outcomeError = error;
    results = events.map((e) => ({ key: usageKey(e), status: "Unconfirmed", state: "open" as const }));
    failure = `sent, but the outcome could not be recorded (${describeWriteError(error.cause)})`;
  }
  const reports = chunk.map((item, i) => {
    const o = outcomeError ? undefined : outcomes?.[i];
    const detail = o && !o.ok && o.status !== "Duplicate" && o.error && o.body !== null
      ? [o.error.code, ...(o.error.details ?? []).map((d) => `${d.target ?? ""}: ${d.message ?? d.code ?? ""}`), o.error.message].filter(Boolean).join("; ")
      : failure;
    return _report(item, results[i], { ...(o ? { outcome: o } : {}), ...(detail ? { message: detail } : {}) });
  });
  return { reports, recorded: !outcomeError, ...(outcomeError ? { outcomeError } : {}) };
}

/** Counts per status, in a stable order (ok statuses first). */
export function summarise(reports: EventReport[]): { counts: Record<string, number>; ok: boolean } {
  const counts: Record<string, number> = {};
  for (const r of reports) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return { counts, ok: reports.every((r) => r.ok) };
}

/**
 * Reads the ledger of the audit log for events whose hour is at most 48 hours old. Only the
 * tail of the log that can hold them is read (a record is written after its event's hour), so
 * the cost follows the last two days of usage, not the age of the log. With `unresolved`, the
 * whole log is read and older events are kept too while their fate is not known (what
 * `--resend` and the doctor list until it is reconciled).
 */
export async function loadLedger(options: { auditPath: string; now?: number; unresolved?: boolean }): Promise<{ ledger: Ledger; invalidLines: number }> {
  const { scanAuditLog } = await import("./audit.mts");
  const now = options.now ?? Date.now();
  const sinceMs = now - 2 * USAGE_WINDOW_MS;
  const ledger = new Ledger({ sinceMs, ...(options.unresolved ? { unresolvedSinceMs: -Infinity } : {}) });
  const { invalidLines } = await scanAuditLog({ path: options.auditPath, ...(options.unresolved ? {} : { sinceMs }), onRecord: (r) => ledger.add(r) });
  return { ledger, invalidLines };
}
