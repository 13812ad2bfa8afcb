// The kinds of record audit.jsonl holds, one builder each. Writers build records only here;
// the ledger and the doctor read them back through lib/audit/log.mts's scan. A field every
// record carries goes into buildAuditRecord (lib/audit/log.mts), the one place `time` is set.
import { summarizeToken } from "../identity/token-info.mts";

/** Subscription and managed resource group, as every record names its customer. */
export interface RecordCustomer {
  subscriptionId: string;
  managedResourceGroup: string;
}

/** A request as recorded: Authorization is never in `headers` (the writer drops it). */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A usage submission is about to be sent: written (fsynced) before the request leaves. */
export interface UsageIntentRecord {
  operation: "usageEvent.intent" | "batchUsageEvent.intent";
  id: string;
  customer: RecordCustomer;
  request: RecordedRequest;
  /** The run's input (digest and the instant its relative hours were resolved against). */
  input?: unknown;
  /** The lock the run held while it sent (`emit`, or a shard's lease) and the holder's token. */
  lock?: { name: string; token: string };
}

/**
 * How a usage submission ended: the API's answer per event, or why none arrived. It refers to
 * its intent by `id` (the intent holds the request: the events as sent, the URL and headers)
 * instead of repeating it; readers join the two by id. Logs written before this held the
 * request here too, and readers still accept that.
 */
export interface UsageOutcomeRecord {
  operation: "usageEvent" | "batchUsageEvent";
  /** The id of the intent this outcome closes. */
  id: string;
  customer: RecordCustomer;
  tokenClaims: Record<string, unknown>;
  response?: { status: number; requestId?: string; correlationId?: string; body: unknown };
  events: unknown[];
  error?: { code?: string; message?: string };
}

/** One request to an Azure service other than the metering API, and its answer (redacted). */
export interface ExchangeRecord {
  /** `<service>.<action>`, e.g. `keyvault.setSecret`, `servicebus.send`, `managedApp.listTokens`, `token`. */
  operation: string;
  customer?: RecordCustomer;
  request: RecordedRequest;
  response?: { status: number; requestId?: string; body: unknown; [detail: string]: unknown };
  tokenClaims?: Record<string, unknown>;
  via?: string;
  error?: { code?: string; message: string };
  [detail: string]: unknown;
}

/** A customer was disconnected: what was deleted, and whether pending events were overridden. */
export interface DisconnectRecord {
  operation: "customer.disconnect";
  customer: RecordCustomer;
  uamiId: string;
  uamiClientId: string;
  deletedCredentials: string[];
  deletedIdentity: boolean;
  forcedWithPendingEvents?: string[];
}

/**
 * A change a script made in Azure (setup, key rotation, connect, grant, migration): what, where
 * and how it ended. One record per change, written after the outcome is known; a failed change
 * is recorded too, with the error's one line.
 */
export interface ChangeRecord {
  /** `<area>.<action>`, e.g. `issuer.setup`, `issuer.rotateKey`, `customer.connect`. */
  operation: string;
  customer?: RecordCustomer;
  /** The resource ids or URLs the change created, updated or deleted. */
  targets: string[];
  outcome: "succeeded" | "failed";
  error?: { code?: string; message: string };
  /** What else a reader needs (deployment name, key ids, role names); never a secret. */
  detail?: Record<string, unknown>;
}

/**
 * Late raw usage (an hour another input billed already) moved into a later open hour of the
 * same customer and dimension (`2-emit-meter --aggregate --late carry`): written before the
 * target's intent, so a rerun of the same input carries it to the same hour and never twice.
 */
export interface CarryRecord {
  operation: "usage.carry";
  customer: RecordCustomer;
  /** The run's input digest. */
  digest: string;
  /** The usage key of the late hour and of the hour it was carried into. */
  fromKey: string;
  toKey: string;
  dimension: string;
  from: string;
  to: string;
  quantity: number;
  /** Input lines of the late records (the first 100). */
  lines: number[];
  records: number;
}

/**
 * A recurring charge (config.json `meters`) whose hour left the API's window with no event: it
 * cannot be billed. Recorded when a run first reports it, so later runs do not report it again.
 */
export interface MissedRecord {
  operation: "usage.missed";
  customer: RecordCustomer;
  key: string;
  dimension: string;
  effectiveStartTime: string;
  quantity: number;
}

/**
 * 4-reconcile settled an event whose fate the log did not know (sent without an answer, or
 * refused on a resend past the API's window): the API's per-day figures left exactly one
 * explanation, in which it was billed or not. The ledger then treats it as settled.
 */
export interface ReconcileRecord {
  operation: "reconcile";
  customer: RecordCustomer;
  /** The ledger key: resourceId (lower case) | dimension | UTC hour. */
  key: string;
  event: { resourceId: string; resourceUri?: string; dimension: string; quantity: number; effectiveStartTime: string; planId: string };
  settled: "billed" | "notBilled";
  /** The API's figures for the event's day and how they explain it. */
  evidence: {
    usageDate: string;
    submittedQuantity: number;
    submittedCount: number;
    reconStatus: string;
    acceptedQuantity: number;
    acceptedCount: number;
    unresolvedCount: number;
    explanation: string;
  };
}

/** Every record kind a writer may append (`time` is added by the writer). */
export type AuditEntry = UsageIntentRecord | UsageOutcomeRecord | ExchangeRecord | DisconnectRecord | ChangeRecord | CarryRecord | MissedRecord | ReconcileRecord;

/** An exchange as a client saw it, before redaction. */
export interface Exchange {
  operation: string;
  customer?: RecordCustomer;
  request: { method: string; url: string; headers?: Record<string, string>; body?: unknown };
  response?: { status: number; requestId?: string; body?: unknown; [detail: string]: unknown };
  tokenClaims?: Record<string, unknown>;
  via?: string;
  error?: { code?: string; message: string };
  [detail: string]: unknown;
}

/** Writes one exchange to the audit log (the publisher context's recorder). */
export type ExchangeRecorder = (exchange: Exchange) => Promise<void>;

/** Keys whose values are secret values: replaced by `<redacted: N chars>`. */
const SECRET_VALUE_KEYS = new Set(["value", "client_secret", "password"]);
/** Keys whose values are tokens: replaced by `<key>Redacted` (their length) and `<key>Claims`. */
const TOKEN_KEYS = new Set(["access_token", "accesstoken", "refresh_token", "token", "id_token"]);

/** A copy of `value` with secret values and tokens replaced (tokens by their decoded claims). Pure. */
export function redactForAudit(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactForAudit);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const lower = k.toLowerCase();
    if (TOKEN_KEYS.has(lower) && typeof v === "string") {
      // The audit guard refuses any token-named key with a value, so the key itself changes.
      out[`${k}Redacted`] = `<redacted: ${v.length} chars>`;
      if (v) out[`${k}Claims`] = summarizeToken(v).claims;
    } else if (SECRET_VALUE_KEYS.has(lower) && typeof v === "string") {
      out[k] = `<redacted: ${v.length} chars>`;
    } else out[k] = redactForAudit(v);
  }
  return out;
}

/** The record of one exchange: bodies redacted (secret values by their length, tokens by their claims). Pure. */
export function exchangeRecord(exchange: Exchange): ExchangeRecord {
  const { request, response, ...rest } = exchange;
  return {
    ...rest,
    request: { method: request.method, url: request.url, headers: request.headers ?? {}, body: redactForAudit(request.body ?? null) },
    ...(response ? { response: { ...response, body: redactForAudit(response.body ?? null) } } : {}),
  };
}

/** The intent of one usage submission. Pure. */
export function usageIntentRecord(o: Omit<UsageIntentRecord, "operation"> & { batch: boolean }): UsageIntentRecord {
  const { batch, ...rest } = o;
  return { operation: batch ? "batchUsageEvent.intent" : "usageEvent.intent", ...rest };
}

/** The outcome of one usage submission. Pure. */
export function usageOutcomeRecord(o: Omit<UsageOutcomeRecord, "operation"> & { batch: boolean }): UsageOutcomeRecord {
  const { batch, ...rest } = o;
  return { operation: batch ? "batchUsageEvent" : "usageEvent", ...rest };
}

/** The record of a disconnected customer. Pure. */
export function disconnectRecord(o: Omit<DisconnectRecord, "operation">): DisconnectRecord {
  return { operation: "customer.disconnect", ...o };
}

/** The record of one change made in Azure. Pure. */
export function changeRecord(o: ChangeRecord): ChangeRecord {
  return { ...o, ...(o.detail ? { detail: redactForAudit(o.detail) as Record<string, unknown> } : {}) };
}

/** The record of late usage carried into a later hour. Pure. */
export function carryRecord(o: Omit<CarryRecord, "operation">): CarryRecord {
  return { operation: "usage.carry", ...o };
}

/** The record of a recurring charge missed for good. Pure. */
export function missedRecord(o: Omit<MissedRecord, "operation">): MissedRecord {
  return { operation: "usage.missed", ...o };
}

/** The record of one event settled by reconciliation. Pure. */
export function reconcileRecord(o: Omit<ReconcileRecord, "operation">): ReconcileRecord {
  return { operation: "reconcile", ...o };
}
