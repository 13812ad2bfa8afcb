// The Marketplace metering API: send usage events (single or batch) through an Azure SDK
// pipeline (retries on network errors, 429 with Retry-After and 5xx), and turn every
// documented answer into a typed outcome (what each status means: status.mts). Resending is
// safe: the API keeps the first event per (resource, dimension, UTC hour) and answers later
// ones with Duplicate.
// deno-lint-ignore-file no-explicit-any -- the API's JSON bodies are read field by field, whatever their shape
import { randomUUID } from "node:crypto";
import { MeteringApiError } from "../core/errors.mts";
import { statusOf, statusOfRefusal, type UsageStatus } from "./status.mts";
import type { Settings } from "../core/settings.mts";
import type { HttpClient, PipelineRetryOptions } from "@azure/core-rest-pipeline";

const METERING_API_VERSION = "2018-08-31";
export const MAX_BATCH_SIZE = 25;
/**
 * Deadline for one submission, retries included. An AbortSignal rather than the pipeline's
 * per-request `timeout`: @typespec/ts-http-runtime leaves that timer running when the
 * connection fails, which kept the process alive for the full timeout.
 */
const SUBMIT_DEADLINE_MS = 60_000;

/** One usage event as the API takes it. Both ids are sent, as the original tool did. */
export interface UsageEvent {
  /** The managed app's `billingDetails.resourceUsageId`. */
  resourceId: string;
  /** The managed app's resource id. */
  resourceUri: string;
  planId: string;
  dimension: string;
  quantity: number;
  /** Start of a UTC hour, ISO 8601 with Z, e.g. `2024-05-01T13:00:00Z`. */
  effectiveStartTime: string;
}

/** A request as sent (and as printed by --dry-run and logged in the audit file); never holds the token. */
export interface UsageRequestDescription {
  method: "POST";
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** Describes the request for one event, or for a batch when `events` is an array. Pure. */
export function describeUsageRequest(options: {
  event?: UsageEvent;
  events?: UsageEvent[];
  /** The API's base URL (settings.meteringApiBaseUrl). */
  baseUrl: string;
  requestId?: string;
  correlationId?: string;
}): UsageRequestDescription {
  const base = options.baseUrl.replace(/\/+$/, "");
  const batch = options.events !== undefined;
  return {
    method: "POST",
    url: `${base}/api/${batch ? "batchUsageEvent" : "usageEvent"}?api-version=${METERING_API_VERSION}`,
    headers: {
      "content-type": "application/json",
      "x-ms-requestid": options.requestId ?? randomUUID(),
      "x-ms-correlationid": options.correlationId ?? randomUUID(),
    },
    body: batch ? { request: options.events } : options.event,
  };
}

export interface UsageErrorDetail {
  code?: string;
  target?: string;
  message?: string;
}

export interface UsageOutcome {
  /**
   * `Accepted`; `Duplicate` (an event for this resource, dimension and hour was accepted
   * before: see `original`); a StatusEnum value for batch items (any the API sends, listed in
   * status.mts or not); `BadArgument` for a single 400; `Forbidden` for 401/403; `Error` for
   * anything else.
   */
  status: UsageStatus;
  /** Accepted, or Duplicate with the same quantity: the usage is recorded either way. */
  ok: boolean;
  httpStatus: number;
  /** The event that was sent. */
  event: UsageEvent;
  /** The API's record of the accepted event (200). */
  accepted?: Record<string, unknown>;
  /** For Duplicate: the event accepted earlier (its quantity, id and time, not ours). */
  original?: Record<string, unknown>;
  /** For Duplicate: whether the original's quantity equals the one sent. */
  quantityMatches?: boolean;
  error?: { code?: string; message?: string; target?: string; details?: UsageErrorDetail[] };
  requestId?: string;
  correlationId?: string;
  /** The response body, parsed when JSON. */
  body: unknown;
}

function _parseBody(text: string | null | undefined): unknown {
  if (text === undefined || text === null || text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function _asObject(value: unknown): Record<string, any> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, any>) : undefined;
}

function _errorOf(body: Record<string, any> | undefined): UsageOutcome["error"] {
  if (!body) return undefined;
  const details = Array.isArray(body.details)
    ? body.details.map((d: Record<string, unknown>) => ({ code: d?.code as string, target: d?.target as string, message: d?.message as string }))
    : undefined;
  return { code: body.code, message: body.message, target: body.target, ...(details ? { details } : {}) };
}

function _duplicate(original: Record<string, any> | undefined, event: UsageEvent) {
  const quantityMatches = original !== undefined && Number(original.quantity) === event.quantity;
  return { original, quantityMatches };
}

/**
 * Turns a single-event response into an outcome. Pure.
 * 200 Accepted; 409 Duplicate (additionalInfo.acceptedMessage is the original);
 * 400 BadArgument (code, message, details[]); 401/403 Forbidden (no body); else Error.
 */
export function parseUsageEventResponse(options: {
  httpStatus: number;
  bodyText?: string | null;
  event: UsageEvent;
  requestId?: string;
  correlationId?: string;
}): UsageOutcome {
  const body = _parseBody(options.bodyText);
  const obj = _asObject(body);
  const base = { httpStatus: options.httpStatus, event: options.event, requestId: options.requestId, correlationId: options.correlationId, body };
  if (options.httpStatus === 200 && obj) {
    const status = typeof obj.status === "string" ? statusOf(obj.status) : "Accepted";
    return { ...base, status, ok: status === "Accepted", accepted: obj };
  }
  if (options.httpStatus === 409) {
    const { original, quantityMatches } = _duplicate(_asObject(obj?.additionalInfo?.acceptedMessage), options.event);
    return { ...base, status: "Duplicate", ok: quantityMatches, original, quantityMatches, error: _errorOf(obj) };
  }
  const status = statusOfRefusal(options.httpStatus);
  return { ...base, status, ok: false, ...(status === "Forbidden" ? {} : { error: _errorOf(obj) }) };
}

export interface BatchOutcome {
  httpStatus: number;
  requestId?: string;
  correlationId?: string;
  body: unknown;
  /** One outcome per event sent, in request order. Empty when the whole batch was refused. */
  results: UsageOutcome[];
  /** Set when the batch as a whole was refused (400 too many/none, 403, …). */
  error?: UsageOutcome["error"];
}

/**
 * Turns a batch response into per-event outcomes. Pure. The API answers 200 even when
 * every item failed; each item has a status (unknown statuses count as failures).
 */
export function parseBatchResponse(options: {
  httpStatus: number;
  bodyText?: string | null;
  events: UsageEvent[];
  requestId?: string;
  correlationId?: string;
}): BatchOutcome {
  const body = _parseBody(options.bodyText);
  const obj = _asObject(body);
  const head = { httpStatus: options.httpStatus, requestId: options.requestId, correlationId: options.correlationId, body };
  if (options.httpStatus !== 200 || !Array.isArray(obj?.result)) {
    return { ...head, results: [], error: options.httpStatus === 200 ? { message: "no result array in the answer" } : _errorOf(obj) };
  }
  const results = options.events.map((event, i): UsageOutcome => {
    const item = _asObject(obj!.result[i]);
    const common = { httpStatus: 200, event, requestId: options.requestId, correlationId: options.correlationId, body: item ?? null };
    if (!item) return { ...common, status: "Error", ok: false, error: { message: "no result for this event" } };
    const status = statusOf(String(item.status ?? "Error"));
    if (status === "Accepted") return { ...common, status, ok: true, accepted: item };
    if (status === "Duplicate") {
      const { original, quantityMatches } = _duplicate(_asObject(item.error?.additionalInfo?.acceptedMessage), event);
      return { ...common, status, ok: quantityMatches, original, quantityMatches, error: _errorOf(_asObject(item.error)) };
    }
    // Any other status, listed in status.mts or not, is a failure carrying the API's error.
    return { ...common, status, ok: false, error: _errorOf(_asObject(item.error)) };
  });
  return { ...head, results };
}

export interface SendOptions {
  /** Bearer token for the metering API (aud 20e940b3-…). */
  accessToken: string;
  requestId?: string;
  correlationId?: string;
}

export interface MeteringClientOptions {
  /** The base URL (METERING_API_BASE_URL) and the per-try timeout (METERING_HTTP_TRY_TIMEOUT_MS). */
  settings: Pick<Settings, "meteringApiBaseUrl" | "httpTryTimeoutMs">;
  /** Replaces the HTTP client (tests); the retry policies still apply. */
  httpClient?: HttpClient;
  /** The SDK retry policy's settings; default DEFAULT_RETRY_OPTIONS (5 tries, backoff with jitter). */
  retryOptions?: PipelineRetryOptions;
  /** Allow plain http (a local test server only: the bearer token would travel in clear). */
  allowInsecureConnection?: boolean;
  /** Give up after this long, retries included; default SUBMIT_DEADLINE_MS. */
  deadlineMs?: number;
}

interface _RawResponse {
  httpStatus: number;
  bodyText?: string | null;
  requestId?: string;
  correlationId?: string;
}

/** One row of GET /api/usageEvents: per UTC day, resource, dimension and plan (docs/azure-behaviour.md §1.6). */
export interface UsageReportRow {
  usageDate: string;
  usageResourceId: string;
  dimension: string;
  planId: string;
  offerId?: string;
  azureSubscriptionId?: string;
  reconStatus: string;
  submittedQuantity: number;
  processedQuantity?: number;
  submittedCount: number;
  [field: string]: unknown;
}

/** The query of GET /api/usageEvents; dates `YYYY-MM-DD` (UTC days, the end inclusive). */
export interface UsageReportQuery {
  usageStartDate: string;
  usageEndDate?: string;
  azureSubscriptionId?: string;
  offerId?: string;
  planId?: string;
  dimension?: string;
  reconStatus?: string;
}

/** Reads the API's usage back (reconciliation). */
export interface UsageReportClient {
  /**
   * GET /api/usageEvents (the publisher app's token only): the API's per-day figures. Throws
   * MeteringApiError for any answer but 200 (403: not the offer's publisher app) or no answer.
   */
  listUsageEvents(options: { accessToken: string; query: UsageReportQuery }): Promise<UsageReportRow[]>;
}

/** Sends usage events over one pipeline and one HTTP client (connections are reused). */
export interface MeteringClient {
  /** The request for one event, or for a batch when `events` is given, as this client sends it. Pure. */
  describe(options: { event?: UsageEvent; events?: UsageEvent[]; requestId?: string; correlationId?: string }): UsageRequestDescription;
  /**
   * POSTs one usage event and returns its outcome. Throws MeteringApiError only when no HTTP
   * answer arrived (after retries); every HTTP status is an outcome.
   */
  submitUsageEvent(options: SendOptions & { event: UsageEvent; request?: UsageRequestDescription }): Promise<UsageOutcome>;
  /** POSTs 1 to 25 events in one batch and returns per-event outcomes in request order. */
  submitUsageBatch(options: SendOptions & { events: UsageEvent[]; request?: UsageRequestDescription }): Promise<BatchOutcome>;
}

/**
 * A metering client: core-rest-pipeline's retry policy (network errors, 408, 5xx with
 * exponential backoff and jitter; 429/503 after Retry-After), a per-try timeout, and a
 * deadline for each submission, retries included.
 *
 * @example
 * const client = await createMeteringClient();
 * const outcome = await client.submitUsageEvent({ event, accessToken });
 * if (outcome.status === "Duplicate") console.log(outcome.original);
 */
export async function createMeteringClient(options: MeteringClientOptions): Promise<MeteringClient & UsageReportClient> {
  const rp = await import("@azure/core-rest-pipeline");
  const { createHttpPipeline, deadline } = await import("../core/http.mts");
  const baseUrl = options.settings.meteringApiBaseUrl;
  const deadlineMs = options.deadlineMs ?? SUBMIT_DEADLINE_MS;
  const { pipeline, httpClient } = await createHttpPipeline({
    settings: options.settings,
    ...(options.retryOptions ? { retryOptions: options.retryOptions } : {}),
    ...(options.httpClient ? { httpClient: options.httpClient } : {}),
  });

  async function send(request: UsageRequestDescription, accessToken: string): Promise<_RawResponse> {
    const headers = rp.createHttpHeaders({ ...request.headers, authorization: `Bearer ${accessToken}` });
    const limit = deadline(deadlineMs);
    const pipelineRequest = rp.createPipelineRequest({
      url: request.url,
      method: request.method,
      headers,
      body: JSON.stringify(request.body),
      abortSignal: limit.signal,
      allowInsecureConnection: options.allowInsecureConnection === true,
    });
    let response;
    try {
      response = await pipeline.sendRequest(httpClient, pipelineRequest);
    } catch (cause) {
      const e = cause as { code?: string; message?: string; statusCode?: number };
      const reason = limit.expired
        ? `no answer within ${deadlineMs / 1000} s, retries included`
        : [e.code, String(e.message ?? cause).split("\n")[0]].filter(Boolean).join(" ");
      throw new MeteringApiError(
        `Cannot reach the metering API at ${new URL(request.url).origin}: ${reason} (resending later is safe: the API detects duplicates)`,
        { httpStatus: e.statusCode, cause },
      );
    } finally {
      limit.clear();
    }
    return {
      httpStatus: response.status,
      bodyText: response.bodyAsText,
      requestId: response.headers.get("x-ms-requestid") ?? request.headers["x-ms-requestid"],
      correlationId: response.headers.get("x-ms-correlationid") ?? request.headers["x-ms-correlationid"],
    };
  }

  async function listUsageEvents(o: { accessToken: string; query: UsageReportQuery }): Promise<UsageReportRow[]> {
    const url = new URL(`${baseUrl.replace(/\/+$/, "")}/api/usageEvents`);
    url.searchParams.set("api-version", METERING_API_VERSION);
    const { usageEndDate, ...rest } = o.query;
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) url.searchParams.set(k, v);
    // Spelled as the docs spell it, with a capital U.
    if (usageEndDate !== undefined) url.searchParams.set("UsageEndDate", usageEndDate);
    const requestId = randomUUID();
    const limit = deadline(deadlineMs);
    let response;
    try {
      response = await pipeline.sendRequest(httpClient, rp.createPipelineRequest({
        url: url.toString(),
        method: "GET",
        headers: rp.createHttpHeaders({ accept: "application/json", "x-ms-requestid": requestId, "x-ms-correlationid": requestId, authorization: `Bearer ${o.accessToken}` }),
        abortSignal: limit.signal,
        allowInsecureConnection: options.allowInsecureConnection === true,
      }));
    } catch (cause) {
      const e = cause as { code?: string; message?: string };
      const reason = limit.expired ? `no answer within ${deadlineMs / 1000} s, retries included` : [e.code, String(e.message ?? cause).split("\n")[0]].filter(Boolean).join(" ");
      throw new MeteringApiError(`Cannot read usage from the metering API at ${url.origin}: ${reason}`, { cause });
    } finally {
      limit.clear();
    }
    const body = _parseBody(response.bodyAsText);
    if (response.status === 403 || response.status === 401) {
      throw new MeteringApiError(
        `Cannot read usage from the metering API: HTTP ${response.status}; only the Entra app of the offer's technical configuration in Partner Center may (run 0-publisher-app with that app id)`,
        { httpStatus: response.status },
      );
    }
    if (response.status !== 200 || !Array.isArray(body)) {
      const detail = (body as any)?.details?.[0]?.message ?? (body as any)?.message ?? String(response.bodyAsText ?? "").slice(0, 200);
      throw new MeteringApiError(`Cannot read usage from the metering API: HTTP ${response.status}${detail ? `: ${detail}` : ""} (request id ${requestId})`, { httpStatus: response.status });
    }
    return body as UsageReportRow[];
  }

  return {
    listUsageEvents,
    describe: (o) => describeUsageRequest({ ...o, baseUrl }),
    async submitUsageEvent(o) {
      const request = o.request ?? describeUsageRequest({ ...o, baseUrl, event: o.event });
      const raw = await send(request, o.accessToken);
      return parseUsageEventResponse({ ...raw, event: o.event });
    },
    async submitUsageBatch(o) {
      if (o.events.length < 1 || o.events.length > MAX_BATCH_SIZE) {
        throw new RangeError(`Cannot submit batch: expected 1 to ${MAX_BATCH_SIZE} events, got ${o.events.length}`);
      }
      const request = o.request ?? describeUsageRequest({ ...o, baseUrl, events: o.events });
      const raw = await send(request, o.accessToken);
      return parseBatchResponse({ ...raw, events: o.events });
    },
  };
}
