// What the audit log says about each usage event, keyed like the API's duplicate rule:
// (resource, dimension, UTC hour). An event is `accepted` once the API holds a quantity for
// its key, `failed` when the API refused it for good, and `open` while its fate is unknown:
// an intent without an outcome (the process died, the answer was lost) or a transient failure.
// Open events are sent again; the API's duplicate rule makes that safe. An open event whose
// resend the API refuses for good (Expired: the resend came too late) is `unknown`, never
// `failed`: the first send may have been billed, so it must not be billed again by anyone
// reading "not billed"; it stays listed until it is reconciled. Which status gives which state
// is status.mts's table.
import type { AuditRecord } from "../audit/log.mts";
import type { CustomerRef } from "../state/customers.mts";
import type { UsageEvent, UsageOutcome } from "./api.mts";
import { answerMeaning, httpStatusName, isTransientHttpStatus, statusOf, type EventState, type UsageStatus } from "./status.mts";
import { hourStartMs, resourceOfKey, usageKey } from "./time.mts";

/** One event's outcome as recorded in an outcome record's `events` array. */
export interface EventResult {
  key: string;
  /** API status (Accepted, Duplicate, Expired, …), or Unconfirmed / Forbidden / HTTP errors. */
  status: UsageStatus;
  state: EventState;
  /** The quantity the API holds for the key (ours when Accepted, the original's when Duplicate). */
  billedQuantity?: number;
}

/** What a run recorded in its intents about its input, so that a rerun of the same input can finish it. */
export interface RunInput {
  /** SHA-256 (hex) of the input: the file's bytes, or the single event's arguments. */
  digest: string;
  /** The instant the run counted its rows' hours-ago from (ISO 8601). */
  resolvedAt: string;
}

export interface LedgerEntry {
  key: string;
  state: EventState;
  /** The event as last sent. */
  event: UsageEvent;
  customer: CustomerRef;
  status: UsageStatus;
  billedQuantity?: number;
  /** Time of the record that set this state. */
  time: string;
  /** While the fate is not known (open, unknown): when the first unanswered send was recorded. */
  sentAt?: string;
  /** Whether the last send was a resend of an event whose fate was not known. */
  resent?: boolean;
  /** The input of the run that last sent it, when that run recorded one. */
  input?: RunInput;
}

/**
 * What one outcome means for its event. Pure. With `resend` (the event was sent before
 * without a known fate), a final refusal makes it `unknown` instead of `failed`.
 * Accepted, and Duplicate (whatever the quantity: the API holds a quantity for the key now),
 * are `accepted`; refusals that cannot change are `failed`; the rest (batch item `Error`,
 * 429/5xx after retries, unknown statuses) are `open`: resending is the only way to learn.
 */
export function resultOf(outcome: UsageOutcome, options: { resend?: boolean } = {}): EventResult {
  const result = _resultOf(outcome);
  return options.resend ? unresolvedIfRefused(result) : result;
}

/**
 * A result for a resend of an event whose fate was unknown: a final refusal (Expired, …)
 * says nothing about the first send, which the API may hold, so the event is `unknown`.
 */
function unresolvedIfRefused(result: EventResult): EventResult {
  return result.state === "failed" ? { ...result, state: "unknown" } : result;
}

function _resultOf(outcome: UsageOutcome): EventResult {
  const key = usageKey(outcome.event);
  if (outcome.status === "Accepted") return { key, status: "Accepted", state: "accepted", billedQuantity: outcome.event.quantity };
  if (outcome.status === "Duplicate") {
    // The API holds the quantity of the event it accepted first.
    const q = Number(outcome.original?.quantity);
    return { key, status: "Duplicate", state: "accepted", ...(Number.isFinite(q) ? { billedQuantity: q } : {}) };
  }
  // A whole answer of the single endpoint other than 200/400/401/403/409 is named by its HTTP
  // status: 408/429/5xx left after retries is worth another try later (open); any other
  // (404, 415, …) will not change by itself (failed).
  const status = outcome.status === "Error" && outcome.httpStatus !== 200 ? httpStatusName(outcome.httpStatus) : outcome.status;
  // Final refusals are failed; a batch item's `Error` (or `UsageEventError`), a missing item, or
  // a status this client does not know is open: the fate is unknown, and a resend is safe.
  return { key, status, state: _answerState(status) };
}

/** The state an answer other than Accepted and Duplicate gives an event: failed or open (status.mts). */
function _answerState(status: UsageStatus): "failed" | "open" {
  return answerMeaning(status).state === "failed" ? "failed" : "open";
}

/** Events named by an intent record: a single event body, or a batch's `request` array. */
export function eventsOfIntent(record: AuditRecord): UsageEvent[] {
  const body = record.request?.body as { request?: unknown } | UsageEvent | undefined;
  if (!body || typeof body !== "object") return [];
  const list = Array.isArray((body as { request?: unknown }).request) ? (body as { request: unknown[] }).request : [body];
  return list.filter((e): e is UsageEvent => {
    const v = e as Partial<UsageEvent>;
    return typeof v?.resourceId === "string" && typeof v.dimension === "string" && typeof v.quantity === "number" &&
      typeof v.effectiveStartTime === "string" && !Number.isNaN(Date.parse(v.effectiveStartTime));
  });
}

/** Results of a session-1 single-event outcome record (no `events` array). */
function _legacyResults(record: AuditRecord, events: UsageEvent[]): EventResult[] {
  const event = events[0];
  if (!event) return [];
  const key = usageKey(event);
  const status = typeof record.outcome === "string" ? statusOf(record.outcome) : undefined;
  if (status === undefined) return [{ key, status: "Unconfirmed", state: "open" }];
  if (status === "Accepted") return [{ key, status, state: "accepted", billedQuantity: event.quantity }];
  if (status === "Duplicate") {
    const q = Number((record.response?.body as { additionalInfo?: { acceptedMessage?: { quantity?: unknown } } } | undefined)?.additionalInfo?.acceptedMessage?.quantity);
    return [{ key, status, state: "accepted", ...(Number.isFinite(q) ? { billedQuantity: q } : {}) }];
  }
  // Those records named a whole HTTP answer `Error`: a 404 will not change, a 503 may.
  if (_answerState(status) === "failed" || !isTransientHttpStatus(record.response?.status)) return [{ key, status, state: "failed" }];
  return [{ key, status, state: "open" }];
}

/**
 * Folds audit records, in log order, into one entry per key. Feed it with `add` (streaming)
 * and read `entries`. Only keys whose hour is at or after `sinceMs` are kept: older events
 * are past the API's 24-hour window and can neither be sent nor resent. With
 * `unresolvedSinceMs` (earlier), older keys are followed too, but kept only while their fate
 * is not known (open, unknown): a full scan that lists what still needs reconciling.
 */
export class Ledger {
  readonly #entries = new Map<string, LedgerEntry>();
  /** One entry per key; changed only through `add` (the indexes below follow every change). */
  get entries(): ReadonlyMap<string, LedgerEntry> {
    return this.#entries;
  }
  /**
   * Keys of the open and unknown entries, and the resources of all keys ever held (see
   * hasResource): kept as entries change, so that a plan (one per shard pass of a run) does
   * not walk the 54 hours of entries the ledger holds to learn that nothing is unresolved.
   */
  readonly #unresolved = new Set<string>();
  readonly #resources = new Set<string>();
  /** Intents seen, by id, until their outcome arrives. */
  readonly #intents = new Map<string, { events: UsageEvent[]; customer: CustomerRef }>();
  readonly #sinceMs: number;
  readonly #unresolvedSinceMs: number;

  constructor(options: { sinceMs?: number; unresolvedSinceMs?: number } = {}) {
    this.#sinceMs = options.sinceMs ?? -Infinity;
    this.#unresolvedSinceMs = Math.min(this.#sinceMs, options.unresolvedSinceMs ?? Infinity);
  }

  #hourMs(event: UsageEvent): number {
    return hourStartMs(Date.parse(event.effectiveStartTime));
  }

  #keep(event: UsageEvent): boolean {
    return this.#hourMs(event) >= this.#unresolvedSinceMs;
  }

  #set(entry: LedgerEntry) {
    const before = this.#entries.get(entry.key);
    // Once the API holds a quantity for a key, nothing later changes what it holds.
    if (before?.state === "accepted" && entry.state !== "accepted") return;
    if (before?.state === "accepted" && before.billedQuantity !== undefined && entry.billedQuantity === undefined) return;
    // An old key is followed only while its fate is not known.
    if ((entry.state === "accepted" || entry.state === "failed") && this.#hourMs(entry.event) < this.#sinceMs) {
      this.#entries.delete(entry.key);
      this.#unresolved.delete(entry.key);
      return;
    }
    if (!before) this.#resources.add(resourceOfKey(entry.key));
    this.#entries.set(entry.key, entry);
    if (entry.state === "open" || entry.state === "unknown") this.#unresolved.add(entry.key);
    else this.#unresolved.delete(entry.key);
  }

  /** Late usage a run carried: `${digest} ${fromKey}` → the key it was carried into (see lib/metering/late.mts). */
  readonly carries = new Map<string, string>();

  /** Keys of recurring charges reported as missed (lib/metering/meters.mts): reported once. */
  readonly missed = new Set<string>();

  add(record: AuditRecord): void {
    const op = record.operation;
    if (op === "usage.missed") {
      if (typeof record.key === "string") this.missed.add(record.key);
      return;
    }
    if (op === "usage.carry") {
      if (typeof record.digest === "string" && typeof record.fromKey === "string" && typeof record.toKey === "string") {
        this.carries.set(`${record.digest} ${record.fromKey}`, record.toKey);
      }
      return;
    }
    if (op === "reconcile") return this.#settle(record);
    if (op !== "usageEvent" && op !== "batchUsageEvent" && op !== "usageEvent.intent" && op !== "batchUsageEvent.intent") return;
    const customer = record.customer as CustomerRef | undefined;
    if (!customer || typeof record.id !== "string") return;
    if (op.endsWith(".intent")) {
      const events = eventsOfIntent(record).filter((e) => this.#keep(e));
      if (events.length === 0) return;
      this.#intents.set(record.id, { events, customer });
      const input = _runInputOf(record);
      for (const event of events) {
        const key = usageKey(event);
        const before = this.#entries.get(key);
        if (before?.state === "accepted") continue;
        const unresolved = before?.state === "open" || before?.state === "unknown";
        // The run that first sent an unresolved event keeps it, whoever resends it, so a rerun
        // of that run's input still finds it unfinished.
        const owner = unresolved ? before.input ?? input : input;
        this.#set({
          key, state: "open", event, customer, status: "Pending", time: record.time,
          sentAt: unresolved ? before.sentAt ?? before.time : record.time,
          resent: unresolved,
          ...(owner ? { input: owner } : {}),
        });
      }
      return;
    }
    const intent = this.#intents.get(record.id);
    if (!intent) return;
    this.#intents.delete(record.id);
    const results: EventResult[] = Array.isArray(record.events) ? (record.events as EventResult[]) : _legacyResults(record, intent.events);
    const byKey = new Map(results.map((r) => [r.key, r]));
    for (const event of intent.events) {
      const key = usageKey(event);
      const sent = this.#entries.get(key);
      let r = byKey.get(key) ?? { key, status: "Unconfirmed", state: "open" as const };
      // Records of runs that did not know the rule yet: the ledger applies it itself.
      if (sent?.resent) r = unresolvedIfRefused(r);
      const unresolved = r.state === "open" || r.state === "unknown";
      this.#set({
        key, state: r.state, event, customer, status: r.status, billedQuantity: r.billedQuantity, time: record.time,
        ...(unresolved && sent?.sentAt ? { sentAt: sent.sentAt } : {}),
        ...(sent?.resent ? { resent: true } : {}),
        ...(sent?.input ? { input: sent.input } : {}),
      });
    }
  }

  /**
   * A `reconcile` record (4-reconcile): the event is settled as billed (`accepted`, status
   * Reconciled) or not billed (`failed`, status NotBilled). It settles only what the log did
   * not know: an event already accepted or failed stays as it is.
   */
  #settle(record: AuditRecord): void {
    const customer = record.customer as CustomerRef | undefined;
    const event = record.event as UsageEvent | undefined;
    const billed = record.settled === "billed";
    if (!customer || !event || typeof event.effectiveStartTime !== "string" || Number.isNaN(Date.parse(event.effectiveStartTime))) return;
    if (!billed && record.settled !== "notBilled") return;
    if (!this.#keep(event)) return;
    const key = usageKey(event);
    const before = this.#entries.get(key);
    if (before && before.state !== "open" && before.state !== "unknown") return;
    this.#set({
      key, event: before?.event ?? event, customer: before?.customer ?? customer, time: record.time,
      ...(billed ? { state: "accepted", status: "Reconciled", billedQuantity: (before?.event ?? event).quantity } : { state: "failed", status: "NotBilled" }),
      ...(before?.input ? { input: before.input } : {}),
    });
  }

  /**
   * Entries whose fate is not known (open, or unknown after a refused resend). Inside the API's
   * window a resend is safe and may settle them (Accepted or Duplicate); past it, only
   * reconciliation with the API's own records can.
   */
  unresolved(): LedgerEntry[] {
    // In the entries' order (the order of first sight), as callers list and resend them.
    if (this.#unresolved.size === 0) return [];
    return [...this.#entries.values()].filter((e) => this.#unresolved.has(e.key));
  }

  /**
   * Whether any key of this resource (`keyResource(resourceId)`) was held: false means the
   * ledger has no entry for it, so a plan need not build the keys of its rows to look them up.
   * (A key dropped later, past the window, leaves its resource here: a true is only a hint.)
   */
  hasResource(resource: string): boolean {
    return this.#resources.has(resource);
  }

  /**
   * The latest run of this input with events still unresolved: its input and the instant its
   * rows were resolved against. A rerun of the same input resolves its rows against that
   * instant, so it finishes that run instead of billing the same rows again for other hours.
   */
  unfinishedRun(digest: string): RunInput | undefined {
    let latest: RunInput | undefined;
    for (const e of this.unresolved()) {
      if (e.input?.digest !== digest) continue;
      if (!latest || Date.parse(e.input.resolvedAt) > Date.parse(latest.resolvedAt)) latest = e.input;
    }
    return latest;
  }

  get(key: string): LedgerEntry | undefined {
    return this.#entries.get(key);
  }
}

/** The `input` an intent record carries, when it is well formed. */
function _runInputOf(record: AuditRecord): RunInput | undefined {
  const input = record.input as Partial<RunInput> | undefined;
  if (typeof input?.digest !== "string" || typeof input.resolvedAt !== "string" || Number.isNaN(Date.parse(input.resolvedAt))) return undefined;
  return { digest: input.digest, resolvedAt: input.resolvedAt };
}
