// Exactly-once submission of usage events: decide what to send from the audit log (the
// ledger), then per customer take one federated token, send in batches of at most 25, and
// write each batch's intent (fsynced) before sending and its outcome after. Customers run
// concurrently up to a bound. The caller holds the data directory's run lock.
import { randomUUID } from "node:crypto";
import type { AuditWriter, AuditWriterStats } from "../audit/log.mts";
import { type LedgerStore, type ScanCursor, storeOf } from "../audit/store.mts";
import { usageIntentRecord, usageOutcomeRecord } from "../audit/records.mts";
import { AuditWriteError, describeWriteError } from "../core/errors.mts";
import type { CustomerConfig, MeteringConfig } from "../state/config.mts";
import { customerIndexOf, customerKey, type CustomerRef } from "../state/customers.mts";
import { Ledger, resultOf, type EventResult, type LedgerEntry, type RunInput } from "./ledger.mts";
import { MAX_BATCH_SIZE, type MeteringClient, type UsageEvent, type UsageOutcome, type UsageRequestDescription } from "./api.mts";
import { answerMeaning, statusOfRefusal, type EventState, type UsageStatus } from "./status.mts";
import { hourOf, isInUsageWindow, keyResource, USAGE_WINDOW_MS, usageKey, usageKeyPrefix } from "./time.mts";
import { UsageRows, type UsageRow } from "./usage-file.mts";
import type { FederatedToken } from "../identity/federation.mts";

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

/** A connected customer as planning needs it, once per customer (not per row). */
interface _PlanCustomer {
  /** Its place in _PlanRows.customers. */
  index: number;
  ref: CustomerRef;
  resourceId: string;
  resourceUri: string;
  planId: string;
  /** usageKeyPrefix per dimension. */
  keyPrefixes: Map<string, string>;
  /** Whether the ledger holds any event of this resource: if not, a row needs no lookup (nor a key string). */
  inLedger: boolean;
}

/**
 * usageKey of a row of this customer: its customer's prefix for the dimension (built once per
 * customer and dimension) and the row's hour (the row's own stored string when it is an hour
 * start), joined. Rows of one dimension over many hours share the prefix; an input of one hour
 * per dimension (as the benchmark's) still builds one prefix per key, about 175 bytes held by
 * its report for the whole run.
 */
function _rowKey(c: _PlanCustomer, dimension: string, effectiveStartTime: string): string {
  let prefix = c.keyPrefixes.get(dimension);
  if (prefix === undefined) c.keyPrefixes.set(dimension, prefix = usageKeyPrefix({ resourceId: c.resourceId, dimension }));
  return prefix + hourOf(effectiveStartTime);
}

/** What the work items of one planSubmission call share: the rows and each row's customer. */
interface _PlanRows {
  rows: UsageRows;
  customers: _PlanCustomer[];
  /** Per row, its customer's place in `customers`. */
  customerOf: Int32Array;
}

/**
 * The class of the work items of one planSubmission call's input rows. An item holds only its
 * row's index (the rows and customers are the class's, through a closure), so that a million
 * rows cost a one-field object each instead of an item, an event, a key string and a customer
 * ref each: a 1,000,000-row dry run stays under 300 MB. `event` is built from the row on each
 * use (equal content, a fresh object); `key` and `line` are read from it. JSON has the same
 * fields as any other WorkItem.
 */
function _rowWorkClass(plan: _PlanRows) {
  const customerOf = (i: number) => plan.customers[plan.customerOf[i]];
  return class RowWork implements WorkItem {
    readonly #index: number;

    constructor(index: number) {
      this.#index = index;
    }

    get event(): UsageEvent {
      const i = this.#index, c = customerOf(i), rows = plan.rows;
      return { resourceId: c.resourceId, resourceUri: c.resourceUri, planId: c.planId, dimension: rows.fieldAt(i, "dimension"), quantity: rows.fieldAt(i, "quantity"), effectiveStartTime: rows.fieldAt(i, "effectiveStartTime") };
    }

    get customer(): CustomerRef {
      return customerOf(this.#index).ref;
    }

    get key(): string {
      const i = this.#index;
      return _rowKey(customerOf(i), plan.rows.fieldAt(i, "dimension"), plan.rows.fieldAt(i, "effectiveStartTime"));
    }

    get line(): number {
      return plan.rows.fieldAt(this.#index, "line");
    }

    toJSON(): WorkItem {
      return { event: this.event, customer: this.customer, key: this.key, line: this.line };
    }
  };
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
   * the audit log could not record the intent). What each means: status.mts.
   */
  status: UsageStatus;
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
}

/**
 * Decides what to send. Pure apart from `now`. `rows` are rows as checkRows (lib/usage-file)
 * passes them: connected customers, one row per customer, dimension and hour.
 * - A row whose key the API already holds with the same quantity is AlreadyAccepted (not sent),
 *   with another quantity a Conflict (not sent), unless `force`.
 * - An earlier run's event whose fate is not known (open, or unknown after a refused resend) is
 *   sent again as it was recorded, while inside the API's window; a row for the same hour with
 *   another quantity is a Conflict (the earlier quantity may already be billed).
 * - Such events no input row mentions are sent again too; past the window (or with the
 *   customer gone) each is Unknown (`unknown`): it may have been billed.
 */
export function planSubmission(options: {
  rows: UsageRows | UsageRow[];
  config: MeteringConfig;
  ledger: Ledger;
  force?: boolean;
  now?: number;
}): SubmissionPlan {
  const now = options.now ?? Date.now();
  const plan: SubmissionPlan = { work: [], settled: [], unknown: [] };
  // Keys the ledger knows that a row planned: its open entries are not planned twice.
  const planned = new Set<string>();
  // Rows name few customers, each many times: look each spelling up once.
  const customers = new Map<string, Map<string, _PlanCustomer>>();
  const index = customerIndexOf(options.config);
  const inWindow = (e: UsageEvent) => isInUsageWindow(Date.parse(e.effectiveStartTime), now);

  const rows = options.rows instanceof UsageRows ? options.rows : UsageRows.from(options.rows);
  const shared: _PlanRows = { rows, customers: [], customerOf: new Int32Array(rows.length) };
  const RowWork = _rowWorkClass(shared);
  for (let i = 0; i < rows.length; i++) {
    // Field by field: most rows need only their customer, and then no row object is built.
    const subscriptionId = rows.fieldAt(i, "subscriptionId"), managedResourceGroup = rows.fieldAt(i, "managedResourceGroup");
    let bySpelling = customers.get(subscriptionId);
    if (!bySpelling) customers.set(subscriptionId, bySpelling = new Map());
    let c = bySpelling.get(managedResourceGroup);
    if (!c) {
      const found = index.find({ subscriptionId, managedResourceGroup });
      const customer = found?.customer as CustomerConfig | undefined;
      if (!found || !customer?.billing?.resourceId) {
        throw new RangeError(`Cannot plan line ${rows.fieldAt(i, "line")}: customer ${subscriptionId}/${managedResourceGroup} is not connected (checkRows refuses such rows)`);
      }
      c = {
        index: shared.customers.length,
        ref: { subscriptionId: found.subscriptionId, managedResourceGroup: found.managedResourceGroup },
        resourceId: customer.billing.resourceId, resourceUri: customer.billing.resourceUri, planId: customer.planName,
        keyPrefixes: new Map(),
        inLedger: options.ledger.hasResource(keyResource(customer.billing.resourceId)),
      };
      bySpelling.set(managedResourceGroup, c);
      shared.customers.push(c);
    }
    shared.customerOf[i] = c.index;
    const item = new RowWork(i);
    // usageKey(event), from a prefix per customer and dimension (one string per row, not
    // five), and only for a resource the ledger knows: a million rows make little garbage.
    let key = "";
    if (c.inLedger) key = _rowKey(c, rows.fieldAt(i, "dimension"), rows.fieldAt(i, "effectiveStartTime"));
    const entry = c.inLedger ? options.ledger.get(key) : undefined;
    if (options.force || !entry || entry.state === "failed") {
      plan.work.push(item);
      if (entry) planned.add(key);
      continue;
    }
    const row = rows.at(i);
    const ref = c.ref;
    const event = item.event;
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
    else if (!index.find(entry.customer)) plan.unknown.push(unknownReport(entry, { reason: "customer" }));
    else plan.work.push({ event: entry.event, customer: entry.customer, key: entry.key, resend: true, ...(entry.sentAt ? { sentAt: entry.sentAt } : {}) });
  }
  return plan;
}


/**
 * The report of an event sent without a known fate that no resend can settle now: the API may
 * hold it from the first send, so it is neither billed nor "not billed" until reconciled.
 */
function unknownReport(entry: LedgerEntry, options: { line?: number; reason: "window" | "customer" }): EventReport {
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

export interface SubmissionProgress {
  eventsDone: number;
  eventsTotal: number;
  customersDone: number;
  customersTotal: number;
}

export interface RunSubmissionOptions {
  work: WorkItem[];
  config: MeteringConfig;
  /** The ledger's store; `auditPath` names a local audit.jsonl instead. */
  ledger?: LedgerStore;
  auditPath?: string;
  client: MeteringClient;
  /** A federated token for a customer (cached by the caller's token source). */
  getToken(customer: CustomerConfig, ref: CustomerRef): Promise<FederatedToken>;
  /** `batch` (batchUsageEvent, up to 25 per call) or `single` (usageEvent, one per call). */
  mode?: "batch" | "single";
  batchSize?: number;
  /** Requests in flight at once (batches of any customers); default 8. */
  concurrency?: number;
  /** This run's input, recorded in every intent so that a rerun of it can finish this run. */
  input?: RunInput;
  /**
   * The lock the run holds (recorded in every intent). Before each batch is sent, `lost()` is
   * asked: once the lock is lost (a lease not renewed), no further batch is sent.
   */
  lock?: { name: string; token: string; lost(): Error | undefined };
  onProgress?: (progress: SubmissionProgress) => void;
  /**
   * A customer's last batch of the run is done (sent or not): its token is not asked for again,
   * so the caller can let go of what it holds for it (a credential and its cached token each).
   */
  onCustomerDone?: (customer: CustomerConfig, ref: CustomerRef) => void;
  /** What the audit writer did (records, writes and fsyncs, bytes), once it is closed. */
  onAuditStats?: (stats: AuditWriterStats) => void;
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
    status: statusOfRefusal(httpStatus),
    ok: false, httpStatus, event, body: null, requestId: answer.requestId, correlationId: answer.correlationId,
  }));
}

function _report(item: WorkItem, result: EventResult, extra: { message?: string; outcome?: UsageOutcome } = {}): EventReport {
  const { event } = item;
  let status = result.status;
  const meaning = answerMeaning(status);
  let ok = meaning.ok;
  let message = extra.message;
  if (result.status === "Duplicate" && result.billedQuantity !== event.quantity) {
    ok = false;
    status = "Conflict";
    message = `the API kept an earlier event with quantity ${result.billedQuantity ?? "unknown"} for this hour; ${event.quantity} was not billed: bill the difference in another hour`;
  } else if (result.state === "unknown") {
    // A resend refused for good says nothing about the first send: never "not billed".
    status = "Unknown";
    const past = result.status === "Expired" ? ", now past the API's window" : "";
    message = `sent at ${item.sentAt ?? "an earlier run"}, no answer; this resend was refused (${result.status})${past}; it may have been billed: check Partner Center before billing it again${extra.message ? ` (the API said: ${extra.message})` : ""}`;
  } else if (!meaning.final) {
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
 * Sends the planned work; every event gets exactly one report. The batches of all customers
 * share `concurrency` request slots (a customer with five batches sends them side by side, not
 * one after another); each customer's token is asked for once, by its first batch, and its
 * other batches wait for it. When the audit log cannot record an intent, that batch is not
 * sent and no further batch is (of any customer); the batches already in flight finish. Then
 * it throws AuditWriteError saying exactly what this run sent and recorded, sent without
 * recording its outcome, and did not send.
 */
export async function runSubmission(options: RunSubmissionOptions): Promise<EventReport[]> {
  const mode = options.mode ?? "batch";
  const size = mode === "single" ? 1 : Math.min(options.batchSize ?? MAX_BATCH_SIZE, MAX_BATCH_SIZE);
  const groups = new Map<string, WorkItem[]>();
  for (const item of options.work) {
    const k = customerKey(item.customer);
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(item);
  }
  const index = customerIndexOf(options.config);
  // One customer's batches next to each other, customer after customer: a customer's token is
  // fetched once and its batches go out together.
  type _Customer = { ref: CustomerRef; customer: CustomerConfig; chunksLeft: number; pending?: Promise<FederatedToken>; failed?: unknown };
  const jobs: Array<{ chunk: WorkItem[]; of: _Customer }> = [];
  for (const items of groups.values()) {
    const ref = items[0].customer;
    const chunks = _chunks(items, size);
    const of: _Customer = { ref, customer: index.find(ref)?.customer as CustomerConfig, chunksLeft: chunks.length };
    for (const chunk of chunks) jobs.push({ chunk, of });
  }
  const reports: EventReport[] = [];
  const progress: SubmissionProgress = { eventsDone: 0, eventsTotal: options.work.length, customersDone: 0, customersTotal: groups.size };
  const tally = { recorded: [0, 0], unrecorded: [0, 0] };
  let auditFailure: { error: AuditWriteError; stage: "intent" | "outcome" } | undefined;
  const writer: AuditWriter = await (options.ledger ?? storeOf({ auditPath: options.auditPath! })).createWriter();
  // Batches of a customer that start while its token is being fetched share that fetch (one
  // token request, not one per batch); a later batch asks again (the token source caches it and
  // renews it near expiry). After a failure, none of its batches asks again.
  const tokenOf = (of: _Customer): Promise<FederatedToken> => {
    if (of.failed !== undefined) return Promise.reject(of.failed);
    if (of.pending) return of.pending;
    const pending = of.pending = options.getToken(of.customer, of.ref);
    pending.then(() => {
      if (of.pending === pending) of.pending = undefined;
    }, (error) => {
      of.failed = error ?? new Error("no token");
      if (of.pending === pending) of.pending = undefined;
    });
    return pending;
  };
  const notSent = (chunk: WorkItem[], message: string) => {
    for (const item of chunk) reports.push(_notSent(item, message));
  };
  const auditMessage = () =>
    `not sent: the audit log could not record ${auditFailure!.stage === "intent" ? "an intent" : "an outcome"} (${describeWriteError(auditFailure!.error.cause)})`;
  try {
    await forEachConcurrently(jobs, options.concurrency ?? 8, async ({ chunk, of }) => {
      try {
        if (auditFailure) return notSent(chunk, auditMessage());
        let token: FederatedToken;
        try {
          token = await tokenOf(of);
        } catch (error) {
          // Nothing was sent: no intent, no outcome; the events stay as they were.
          return notSent(chunk, String((error as Error)?.message ?? error));
        }
        if (auditFailure) return notSent(chunk, auditMessage());
        const lost = options.lock?.lost();
        if (lost) return notSent(chunk, `not sent: ${lost.message}; the next run sends it`);
        let sent: { reports: EventReport[]; recorded: boolean; outcomeError?: AuditWriteError };
        try {
          sent = await _sendChunk(chunk, { ...options, mode, writer, token });
        } catch (error) {
          if (!(error instanceof AuditWriteError)) throw error;
          // The intent is not durable, so this batch was not sent; nor will any other be.
          auditFailure ??= { error, stage: "intent" };
          return notSent(chunk, auditMessage());
        }
        reports.push(...sent.reports);
        const counter = sent.recorded ? tally.recorded : tally.unrecorded;
        counter[0]++;
        counter[1] += chunk.length;
        if (!sent.recorded) auditFailure ??= { error: sent.outcomeError!, stage: "outcome" };
      } finally {
        progress.eventsDone += chunk.length;
        options.onProgress?.({ ...progress });
        if (--of.chunksLeft === 0) {
          progress.customersDone++;
          options.onProgress?.({ ...progress });
          options.onCustomerDone?.(of.customer, of.ref);
        }
      }
    });
  } finally {
    await writer.close();
    options.onAuditStats?.(writer.stats());
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
  const request: UsageRequestDescription = batch ? options.client.describe({ events }) : options.client.describe({ event: events[0] });
  const customer = chunk[0].customer;
  // The intent is on disk (every byte, fsynced) before the request leaves: a crash from here
  // on leaves an intent without an outcome, and the next run sends these events again. If it
  // cannot be made durable, this throws and nothing is sent.
  const lock = options.lock ? { name: options.lock.name, token: options.lock.token } : undefined;
  await options.writer.append(usageIntentRecord({ batch, id, customer, request, ...(options.input ? { input: options.input } : {}), ...(lock ? { lock } : {}) }));
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
    results = events.map((e): EventResult => ({ key: usageKey(e), status: "Unconfirmed", state: "open" }));
  }
  const outcome = usageOutcomeRecord(thrown === undefined
    ? { batch, id, customer, tokenClaims: options.token.claims, response, events: results }
    : { batch, id, customer, tokenClaims: options.token.claims, events: results, error: { code: (thrown as { code?: string }).code, message: failure } });
  let outcomeError: AuditWriteError | undefined;
  try {
    await options.writer.append(outcome);
  } catch (error) {
    if (!(error instanceof AuditWriteError)) throw error;
    // Sent, but the log does not say how it ended: the event stays open, and a resend settles it.
    outcomeError = error;
    results = events.map((e): EventResult => ({ key: usageKey(e), status: "Unconfirmed", state: "open" }));
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
export async function loadLedger(options: ({ store: LedgerStore } | { auditPath: string }) & { now?: number; unresolved?: boolean }): Promise<{ ledger: Ledger; invalidLines: number; cursor: ScanCursor }> {
  const store = storeOf(options);
  const now = options.now ?? Date.now();
  const sinceMs = now - 2 * USAGE_WINDOW_MS;
  const ledger = new Ledger({ sinceMs, ...(options.unresolved ? { unresolvedSinceMs: -Infinity } : {}) });
  const { invalidLines, cursor } = await store.scan({ ...(options.unresolved ? {} : { sinceMs }), onRecord: (r) => ledger.add(r) });
  return { ledger, invalidLines, cursor };
}

/**
 * Folds into `ledger` what was written to the store since `cursor` (a runner that holds the
 * ledger in memory between shards reads only the new records). Returns the next cursor.
 */
export async function refreshLedger(o: { store: LedgerStore; ledger: Ledger; cursor: ScanCursor }): Promise<{ cursor: ScanCursor; invalidLines: number }> {
  const { cursor, invalidLines } = await o.store.scan({ after: o.cursor, onRecord: (r) => o.ledger.add(r) });
  return { cursor, invalidLines };
}
