// Every status a usage event can be reported with, and what each one means, in one table:
// the metering API's statuses (docs/azure-behaviour.md §1.3, §1.4: the batch StatusEnum, the 409
// Duplicate, the 400 BadArgument), the ones this client names from an HTTP answer (Forbidden,
// `HTTP n`), and its own outcomes (Unconfirmed, Pending, AlreadyAccepted, Conflict, Unknown,
// NotSent). The ledger, the planner, the reports and 2-emit-meter read the table: a new status
// is a new row here (and, to test it, the sandbox sending it).

/**
 * What the audit log says about an event (lib/metering/ledger.mts): `accepted` once the API
 * holds a quantity for its key, `failed` when the API refused it for good, `open` while its
 * fate is unknown and a resend may settle it, `unknown` when it was sent without an answer and
 * a resend can no longer settle it (it may have been billed).
 */
export type EventState = "accepted" | "open" | "failed" | "unknown";

/** The facts a status's line is written from: an EventReport has them all. */
export interface StatusFacts {
  status: string;
  event: { quantity: number; dimension: string; effectiveStartTime: string; planId: string };
  message?: string;
  httpStatus?: number;
  usageEventId?: string;
  requestId?: string;
  correlationId?: string;
}

export interface StatusMeaning {
  /**
   * `api`: the metering API answers with it (Forbidden: this client's name for its 401/403);
   * `client`: this client's own outcome, never an answer (see answerMeaning).
   */
  source: "api" | "client";
  /**
   * The ledger state of an event answered so on its first send (a final refusal of a *resend*
   * makes it `unknown` instead: ledger.mts). null: the event was not sent, the ledger holds
   * nothing new about it.
   */
  state: EventState | null;
  /** The usage counts as billed as asked: a run exits 0 only when every event is ok. */
  ok: boolean;
  /**
   * The answer is settled: sending the same event again cannot change it, so nothing is resent.
   * Not final: a resend (or, past the API's window, a reconciliation) is still needed to know.
   */
  final: boolean;
  /**
   * How the line is said: `result` is the answer itself (stdout; --json prints the report
   * instead), `note` is said on stderr, with --json too.
   */
  lineIs: "result" | "note";
  /** The line a person reads about one event with this status. */
  line(facts: StatusFacts): string;
}

const _what = (f: StatusFacts) => `${f.event.quantity} ${f.event.dimension} for ${f.event.effectiveStartTime}`;
const _ids = (f: StatusFacts) => `request id ${f.requestId ?? "-"}, correlation id ${f.correlationId ?? "-"}`;

/** A refusal, or any outcome without a line of its own: the status and what was said about it. */
const _cannot = (f: StatusFacts) => `Cannot record ${_what(f)}: ${f.status}${f.message ? `: ${f.message}` : ""} (${_ids(f)})`;

/**
 * What to do about a dimension the API does not know for the plan (InvalidDimension, or a 400
 * BadArgument whose details target `dimension`): the same words in 2-emit-meter and the doctor.
 * The API lists no plan's dimensions; Partner Center does. Pure.
 */
export function explainInvalidDimension(o: { planName?: string; dimension?: string }): string {
  const plan = o.planName ? `plan ${JSON.stringify(o.planName)}` : "the plan";
  return `${o.dimension !== undefined ? `the metering API does not know dimension ${JSON.stringify(o.dimension)} for ${plan}: ` : ""}use the dimension ids of ${plan} exactly as Partner Center lists them (case-sensitive: "cpu-hours" is not "CPU-Hours"); events for an unknown dimension are not billed`;
}

/** True when a refusal's message (details as `target: message`, see submission.mts) is about the dimension. */
const _aboutDimension = (f: StatusFacts) => f.status === "InvalidDimension" || /(^|; )dimension: /i.test(f.message ?? "");

/** A dimension refusal as its explanation, anything else as _cannot. */
const _refusedLine = (f: StatusFacts) =>
  _aboutDimension(f) ? `Cannot record ${_what(f)}: ${f.status}: ${explainInvalidDimension({ planName: f.event.planId, dimension: f.event.dimension })} (${_ids(f)})` : _cannot(f);

/** Refused for good by the API: resending the same event gets the same answer. */
const REFUSED: StatusMeaning = { source: "api", state: "failed", ok: false, final: true, lineIs: "note", line: _cannot };
/** No final answer: the fate is unknown, and a resend is safe (the API's duplicate rule) and may settle it. */
const NO_ANSWER: StatusMeaning = { source: "api", state: "open", ok: false, final: false, lineIs: "note", line: _cannot };
const NO_ANSWER_HERE: StatusMeaning = { ...NO_ANSWER, source: "client" };

/** The table. Keys are the statuses exactly as they are sent, recorded and printed. */
export const STATUSES = {
  // ---- the API's answers
  /** 200 (a single event, or a batch item): the API holds our quantity for the key. */
  Accepted: {
    source: "api", state: "accepted", ok: true, final: true, lineIs: "result",
    line: (f) => `Accepted: ${_what(f)}, plan ${f.event.planId}\nusageEventId ${f.usageEventId ?? "-"} (${_ids(f)})`,
  },
  /**
   * 409 (single) or a batch item: an event for this key was accepted before, and the API holds
   * its quantity. ok as reported: a Duplicate whose original holds another quantity is reported
   * as Conflict (submission.mts).
   */
  Duplicate: {
    source: "api", state: "accepted", ok: true, final: true, lineIs: "note",
    line: (f) => `The accepted event has the same quantity (${f.event.quantity}): nothing more to do.`,
  },
  /** The hour is past the API's 24-hour window, or in the future. */
  Expired: REFUSED,
  ResourceNotFound: REFUSED,
  /** The caller may not bill this resource (a batch item; a single event gets 403). */
  ResourceNotAuthorized: REFUSED,
  /** The application is suspended or was never activated. */
  ResourceNotActive: REFUSED,
  /** The dimension is not one of the plan's (the sandbox: also a wrong plan). */
  InvalidDimension: { ...REFUSED, line: _refusedLine },
  /** The quantity is 0 or less. */
  InvalidQuantity: REFUSED,
  /** 400 for a single event or a whole batch, or a batch item's refusal of the event's data (a dimension: explained). */
  BadArgument: { ...REFUSED, line: _refusedLine },
  /** 401/403: the token is not one the API takes for this resource. */
  Forbidden: {
    ...REFUSED,
    line: (f) =>
      `Cannot record the event: the API refused the token (HTTP ${f.httpStatus}); the UAMI must sit in this app's managed resource group (or, with --as publisher-app, the publisher app must be the one in the offer's technical configuration in Partner Center) and the app must be a Marketplace offer with metering (${_ids(f)})`,
  },
  /** A batch item the service could not process (the spec's StatusEnum), or a 200 without a usable answer. */
  Error: NO_ANSWER,
  /** The metered-billing accelerator's name for Error; which one the service sends is unconfirmed. */
  UsageEventError: NO_ANSWER,
  // ---- this client's outcomes
  /** Sent without an answer (network, deadline), or answered but the outcome could not be recorded. */
  Unconfirmed: NO_ANSWER_HERE,
  /** In the ledger only: the intent is recorded, its outcome is not (yet). */
  Pending: NO_ANSWER_HERE,
  /** Not sent: the audit log shows the API holds this quantity for the key already. */
  AlreadyAccepted: {
    source: "client", state: "accepted", ok: true, final: true, lineIs: "result",
    line: (f) => `Already accepted: ${_what(f)}; ${f.message} (use --force to send it anyway)`,
  },
  /** The API holds (or may hold, from an unanswered send) another quantity for this hour: this one cannot be billed for it. */
  Conflict: { source: "client", state: "accepted", ok: false, final: true, lineIs: "note", line: (f) => `Cannot record ${_what(f)}: ${f.message}` },
  /** Sent without an answer, and no resend can settle it now: it may have been billed; reconcile before billing it again. */
  Unknown: { source: "client", state: "unknown", ok: false, final: false, lineIs: "note", line: _cannot },
  /**
   * Raw usage (--aggregate) for an hour another input already billed, or one past the API's
   * window: not billed in that hour; with --late carry it is billed in a later open hour instead
   * (lib/metering/late.mts), past the window it cannot be billed at all.
   */
  Late: { source: "client", state: null, ok: false, final: false, lineIs: "note", line: (f) => `Cannot record ${_what(f)}: ${f.message}` },
  /** A recurring charge (config.json meters) whose hour left the window with no event: it cannot be billed; reported once. */
  Missed: { source: "client", state: null, ok: false, final: false, lineIs: "note", line: (f) => `Missed ${_what(f)}: ${f.message}` },
  /**
   * Settled by 4-reconcile: the API's figures for its day leave exactly one explanation, and in it
   * this event (sent without a known fate) was billed. In the ledger only (a `reconcile` record).
   */
  Reconciled: {
    source: "client", state: "accepted", ok: true, final: true, lineIs: "note",
    line: (f) => `Reconciled: ${_what(f)} was billed (the API's figures for its day hold it)`,
  },
  /** Settled by 4-reconcile the other way: the API's figures leave no room for it; it was not billed. */
  NotBilled: {
    source: "client", state: "failed", ok: false, final: true, lineIs: "note",
    line: (f) => `Not billed: ${_what(f)} (the API's figures for its day, reconciled, do not hold it)`,
  },
  /** Not sent (no token, or the audit log could not record the intent); the next run sends it. */
  NotSent: { source: "client", state: null, ok: false, final: false, lineIs: "note", line: (f) => f.message ?? "Cannot record the event: no token" },
} as const satisfies Record<string, StatusMeaning>;

/** A status of the table. */
export type ListedStatus = keyof typeof STATUSES;
/** A whole answer of the single-event endpoint other than 200, 400, 401, 403 and 409, named by its HTTP status. */
export type HttpStatusName = `HTTP ${number}`;
declare const _unlisted: unique symbol;
/** A status the API sent that the table does not list, kept as sent (see statusOf). */
export type UnlistedStatus = string & { readonly [_unlisted]: true };
/** A usage event's status: a listed one, an HTTP status, or one the API sent that this client does not know. */
export type UsageStatus = ListedStatus | HttpStatusName | UnlistedStatus;

/** Whether an HTTP status means "try again later" (throttled, timed out, server trouble). */
export function isTransientHttpStatus(status: number | undefined): boolean {
  return status === undefined || status === 0 || status === 408 || status === 429 || status >= 500;
}

/** `HTTP n` answers that a later try may change (408, 429, 5xx after the retries): open. */
const HTTP_TRANSIENT: StatusMeaning = NO_ANSWER;
/** `HTTP n` answers that will not change by themselves (404, 415, …). */
const HTTP_REFUSED: StatusMeaning = REFUSED;
/**
 * A status the API sent that the table does not list. Not final and not ok, so the event stays
 * open and is sent again: the docs list statuses that are unconfirmed (Error or UsageEventError)
 * and the service may add more; an unknown one may be a transient failure, and treating it as a
 * final refusal could leave usage unbilled, while a resend is safe (the API's duplicate rule
 * answers Duplicate if the first send was accepted) and settles it.
 */
const UNLISTED: StatusMeaning = NO_ANSWER;

const HTTP_NAME_RE = /^HTTP (\d+)$/;

/** The name of an HTTP answer without a status of its own, e.g. `HTTP 503`. */
export function httpStatusName(httpStatus: number): HttpStatusName {
  return `HTTP ${httpStatus}`;
}

/** A status as sent by the API or read from the audit log (any string), kept as it is spelt. */
export function statusOf(raw: string): UsageStatus {
  return raw as UsageStatus;
}

/** What a status means: its row of the table; `HTTP n` by the HTTP status; an unlisted one, see UNLISTED. */
export function statusMeaning(status: UsageStatus): StatusMeaning {
  if (Object.hasOwn(STATUSES, status)) return STATUSES[status as ListedStatus];
  const http = HTTP_NAME_RE.exec(status);
  if (http) return isTransientHttpStatus(Number(http[1])) ? HTTP_TRANSIENT : HTTP_REFUSED;
  return UNLISTED;
}

/**
 * What a status means as the outcome of a send: its row, except that a name the table keeps
 * for this client's own outcomes (AlreadyAccepted, Conflict, …) is, coming from the API, a
 * status this client does not know (UNLISTED: open, so that no answer can pass for "billed"
 * or "refused" by its name alone). Unconfirmed (no answer) is open either way.
 */
export function answerMeaning(status: UsageStatus): StatusMeaning {
  const meaning = statusMeaning(status);
  return meaning.source === "api" ? meaning : UNLISTED;
}

/** The status of a whole answer that refused the request (a single event, or a whole batch): 400, 401/403, else Error. */
export function statusOfRefusal(httpStatus: number): "BadArgument" | "Forbidden" | "Error" {
  if (httpStatus === 400) return "BadArgument";
  if (httpStatus === 401 || httpStatus === 403) return "Forbidden";
  return "Error";
}
