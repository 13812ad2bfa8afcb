// Service Bus queues over the REST runtime API (docs/azure-behaviour.md §6.1) with a bearer token (the customer's
// UAMI, audience https://servicebus.azure.net): send, and receive in peek-lock mode where a
// message is completed only after the handler succeeded and abandoned when it failed.
import { Buffer } from "node:buffer";
import { AccessDeniedError, DataPlaneError, ResourceNotFoundError, UsageError } from "../core/errors.mts";
import type { RestClient, RestResponse } from "./rest.mts";
import type { ArmOptions } from "./managed-apps.mts";
import { bodyDigest } from "../audit/policy.mts";

export const SERVICEBUS_SCOPE = "https://servicebus.azure.net//.default";
/** The audience a listTokens token for Service Bus is asked for (the resource SERVICEBUS_SCOPE names). */
export const SERVICEBUS_AUDIENCE = "https://servicebus.azure.net";

export type PropertyValue = string | number | boolean;

/** A received (peek-locked or received-and-deleted) message. */
export interface ReceivedMessage {
  messageId: string;
  sequenceNumber: number;
  deliveryCount: number;
  enqueuedTimeUtc?: string;
  lockedUntilUtc?: string;
  label?: string;
  correlationId?: string;
  contentType?: string;
  properties: Record<string, PropertyValue>;
  body: Uint8Array;
  /** Where to complete (DELETE), abandon (PUT) or renew (POST) the lock; absent after receive-and-delete. */
  lockUri?: string;
}

/** Response headers that are HTTP's or Service Bus's own; the rest are user properties. */
const SYSTEM_HEADERS = new Set([
  "brokerproperties", "content-type", "content-length", "date", "server", "location", "transfer-encoding", "connection", "keep-alive",
  "strict-transport-security", "cache-control", "pragma", "expires",
]);
const PROPERTY_NAME_RE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * Parses `--property k=v` arguments: names are HTTP header tokens (they travel as headers) and
 * not Service Bus's own headers; values are strings.
 */
export function parseProperties(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    const name = eq > 0 ? v.slice(0, eq) : "";
    if (!PROPERTY_NAME_RE.test(name) || SYSTEM_HEADERS.has(name.toLowerCase()) || name.toLowerCase() === "authorization" || name.toLowerCase().startsWith("x-ms-")) {
      throw new UsageError(`Cannot use property ${JSON.stringify(v)}: expected name=value with a name of letters, digits and -_.!#$%&'*+^\`|~ (not a Service Bus or HTTP header)`);
    }
    // deno-lint-ignore no-control-regex
    if (/[\r\n\u0000]/.test(v.slice(eq + 1))) throw new UsageError(`Cannot use property ${JSON.stringify(name)}: the value has a line break`);
    out[name] = v.slice(eq + 1);
  }
  return out;
}

/** Checks a queue name argument (Service Bus entity names: letters, digits, . - _ and /, up to 260). */
/** How long one receive waits on the server with --watch, and at most with --wait (seconds). */
export const WATCH_WAIT_S = 30;
export const MAX_WAIT_S = 60;

/** A Service Bus namespace's name, checked (6-50 letters, digits and hyphens). */
export function parseNamespaceName(value: string | undefined): string {
  const v = value ?? "";
  if (!/^[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]$/.test(v)) throw new UsageError(`Cannot use namespace ${JSON.stringify(v)}: expected a Service Bus namespace name (6-50 letters, digits and hyphens)`);
  return v;
}

/** The BrokerProperties a sender may set from the command line. */
export function brokerProperties(o: { messageId?: unknown; label?: unknown; correlationId?: unknown }): { MessageId?: string; Label?: string; CorrelationId?: string } {
  return {
    ...(o.messageId !== undefined ? { MessageId: String(o.messageId) } : {}),
    ...(o.label !== undefined ? { Label: String(o.label) } : {}),
    ...(o.correlationId !== undefined ? { CorrelationId: String(o.correlationId) } : {}),
  };
}

export function parseQueueName(value: string | undefined): string {
  const v = value ?? "";
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$/.test(v) || /[._/-]$/.test(v)) {
    throw new UsageError(`Cannot use queue ${JSON.stringify(v)}: expected 1-260 letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit`);
  }
  return v;
}

function _detail(res: RestResponse): string {
  const m = /<Detail>([\s\S]*?)<\/Detail>/.exec(res.text());
  return (m ? m[1] : res.text()).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&").replace(/\s*TrackingId:.*$/s, "").trim();
}

/** Service Bus's answer as an error: 403 names the role, 404/410 the missing queue. */
export function serviceBusError(res: RestResponse, options: { action: "send" | "receive"; queue: string; namespace: string; who: string; grant?: (role: string) => string }): Error {
  const what = `${options.action === "send" ? "send to" : "receive from"} queue '${options.queue}' of ${options.namespace}`;
  const detail = _detail(res);
  if (res.status === 403) {
    const role = options.action === "send" ? "Azure Service Bus Data Sender" : "Azure Service Bus Data Receiver";
    const grant = options.grant?.(role) ?? `1-connect-customer.mts --grant "${role}"`;
    return new AccessDeniedError(`Cannot ${what}: forbidden. ${options.who} needs the '${role}' role on the queue or namespace; grant it to that identity with ${grant} (new assignments take a few minutes)`, {
      service: "servicebus", role, httpStatus: 403, detail,
    });
  }
  if (res.status === 410 || res.status === 404) return new ResourceNotFoundError(`Cannot ${what}: the queue does not exist (${detail})`);
  if (res.status === 401) return new DataPlaneError(`Cannot ${what}: Service Bus refused the token (${detail})`, { service: "servicebus", httpStatus: 401, detail });
  return new DataPlaneError(`Cannot ${what}: HTTP ${res.status} ${detail}`.trim(), { service: "servicebus", httpStatus: res.status, detail });
}

const _queueUrl = (endpoint: string, queue: string) => `${endpoint.replace(/\/$/, "")}/${queue.split("/").map(encodeURIComponent).join("/")}`;

/** Sends one message; user properties travel as headers (strings JSON-quoted), system ones in BrokerProperties. */
export async function sendMessage(options: {
  client: RestClient;
  endpoint: string;
  queue: string;
  body: Uint8Array | string;
  contentType?: string;
  properties?: Record<string, PropertyValue>;
  broker?: { MessageId?: string; Label?: string; CorrelationId?: string; ReplyTo?: string; TimeToLive?: number };
  who: string;
  /** The command that gives the caller's identity a role (for the 403 message). */
  grant?: (role: string) => string;
}): Promise<RestResponse> {
  const headers: Record<string, string> = { "content-type": options.contentType ?? "application/octet-stream" };
  if (options.broker && Object.keys(options.broker).length > 0) headers.BrokerProperties = JSON.stringify(options.broker);
  for (const [k, v] of Object.entries(options.properties ?? {})) headers[k] = typeof v === "string" ? JSON.stringify(v) : String(v);
  const body = typeof options.body === "string" ? new TextEncoder().encode(options.body) : options.body;
  const res = await options.client.send({
    method: "POST", url: `${_queueUrl(options.endpoint, options.queue)}/messages`, headers, body,
    // The message by its size and hash, with what describes it; never its content.
    audit: { operation: "servicebus.send", body: { ...bodyDigest(body), contentType: headers["content-type"], properties: options.properties ?? {}, broker: options.broker ?? {} } },
  });
  if (res.status !== 201) throw serviceBusError(res, { action: "send", queue: options.queue, namespace: options.endpoint, who: options.who, grant: options.grant });
  return res;
}

function _propertyValue(raw: string): PropertyValue {
  const t = raw.trim();
  if (/^".*"$/s.test(t)) {
    try {
      return JSON.parse(t) as string;
    } catch { /* bare below */ }
  }
  if (t === "true" || t === "false") return t === "true";
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  return t;
}

/** A message from a receive response. Pure. */
export function readMessage(res: RestResponse): ReceivedMessage {
  let broker: Record<string, unknown> = {};
  try {
    broker = JSON.parse(res.headers.brokerproperties ?? "{}");
  } catch {
    // A broken BrokerProperties header leaves only the body and user properties.
  }
  const properties: Record<string, PropertyValue> = {};
  for (const [name, value] of Object.entries(res.headers)) if (!SYSTEM_HEADERS.has(name) && !name.startsWith("x-ms-")) properties[name] = _propertyValue(value);
  const s = (v: unknown) => typeof v === "string" ? v : undefined;
  return {
    messageId: String(broker.MessageId ?? ""),
    sequenceNumber: Number(broker.SequenceNumber ?? 0),
    deliveryCount: Number(broker.DeliveryCount ?? 0),
    enqueuedTimeUtc: s(broker.EnqueuedTimeUtc) ? new Date(String(broker.EnqueuedTimeUtc)).toISOString() : undefined,
    lockedUntilUtc: s(broker.LockedUntilUtc) ? new Date(String(broker.LockedUntilUtc)).toISOString() : undefined,
    label: s(broker.Label),
    correlationId: s(broker.CorrelationId),
    contentType: res.headers["content-type"],
    properties,
    body: res.body,
    lockUri: res.headers.location,
  };
}

/** Peek-lock: the next message, locked for the queue's lock duration; undefined when none came within `waitS`. */
export async function peekLock(options: { client: RestClient; endpoint: string; queue: string; waitS: number; who: string; grant?: (role: string) => string; signal?: AbortSignal }): Promise<{ message?: ReceivedMessage; response: RestResponse }> {
  const res = await options.client.send({
    method: "POST",
    url: `${_queueUrl(options.endpoint, options.queue)}/messages/head?timeout=${options.waitS}`,
    timeoutMs: (options.waitS + 30) * 1000,
    abortSignal: options.signal,
    audit: { operation: "servicebus.receive", responseBody: "digest" },
  });
  if (res.status === 204) return { response: res };
  if (res.status !== 201) throw serviceBusError(res, { action: "receive", queue: options.queue, namespace: options.endpoint, who: options.who, grant: options.grant });
  return { message: readMessage(res), response: res };
}

/** Settles a peek-locked message: complete (DELETE the lock URI) or abandon (PUT it). */
export async function settle(options: { client: RestClient; message: ReceivedMessage; how: "complete" | "abandon"; queue: string; who: string }): Promise<RestResponse> {
  if (!options.message.lockUri) throw new DataPlaneError(`Cannot ${options.how} message ${options.message.messageId}: it has no lock`, { service: "servicebus" });
  const m = options.message;
  const res = await options.client.send({
    method: options.how === "complete" ? "DELETE" : "PUT",
    url: m.lockUri!,
    audit: { operation: `servicebus.${options.how}`, details: { message: { messageId: m.messageId, sequenceNumber: m.sequenceNumber, deliveryCount: m.deliveryCount, ...bodyDigest(m.body) } } },
  });
  if (res.status !== 200) {
    throw new DataPlaneError(`Cannot ${options.how} message ${options.message.messageId} of queue '${options.queue}': HTTP ${res.status} ${_detail(res)} (the lock may have expired; the message will be delivered again)`, {
      service: "servicebus", httpStatus: res.status,
    });
  }
  return res;
}

export interface ReceiveOutcome {
  completed: number;
  abandoned: number;
}

/**
 * Receives up to `max` messages (or until `signal` aborts, with `watch`): each is peek-locked,
 * handed to `handle`, then completed; when `handle` throws it is abandoned (delivered again, and
 * dead-lettered by Service Bus after the queue's maxDeliveryCount) and the error is rethrown
 * after settling. An abort while waiting for the next message ends the loop with the outcome so
 * far; the message in hand when it comes is still completed.
 */
export async function receiveMessages(options: {
  client: RestClient;
  endpoint: string;
  queue: string;
  max: number;
  waitS: number;
  watch?: boolean;
  signal?: AbortSignal;
  who: string;
  grant?: (role: string) => string;
  handle(message: ReceivedMessage): Promise<void>;
}): Promise<ReceiveOutcome> {
  const outcome: ReceiveOutcome = { completed: 0, abandoned: 0 };
  while ((options.watch || outcome.completed < options.max) && !options.signal?.aborted) {
    let message: ReceivedMessage | undefined;
    try {
      ({ message } = await peekLock(options));
    } catch (error) {
      // Stopped while waiting for the next message: nothing is in hand, so the outcome stands.
      if (options.signal?.aborted) break;
      throw error;
    }
    if (!message) {
      if (options.watch) continue;
      break;
    }
    try {
      await options.handle(message);
    } catch (error) {
      await settle({ client: options.client, message, how: "abandon", queue: options.queue, who: options.who });
      outcome.abandoned++;
      throw error;
    }
    await settle({ client: options.client, message, how: "complete", queue: options.queue, who: options.who });
    outcome.completed++;
  }
  return outcome;
}

const NAMESPACE_API_VERSION = "2021-11-01";

/** A queue's namespace endpoint, from ARM (az rest): namespace and queue must exist in the managed resource group. */
export async function findQueueEndpoint(o: { subscriptionId: string; managedResourceGroup: string; namespace: string; queue: string } & ArmOptions): Promise<string> {
  const { armRequest } = await import("./arm-resource.mts");
  const nsId = `/subscriptions/${o.subscriptionId}/resourceGroups/${o.managedResourceGroup}/providers/Microsoft.ServiceBus/namespaces/${o.namespace}`;
  const ns = await armRequest({
    ...o,
    method: "GET",
    url: `${nsId}?api-version=${NAMESPACE_API_VERSION}`,
    what: `Service Bus namespace '${o.namespace}' in ${o.subscriptionId}/${o.managedResourceGroup}`,
    hint: "check the namespace's name; it must be in the managed resource group",
  }) as { properties?: { serviceBusEndpoint?: string } };
  const endpoint = ns?.properties?.serviceBusEndpoint;
  if (!endpoint) throw new UsageError(`Cannot use namespace '${o.namespace}': ARM reports no serviceBusEndpoint`);
  await armRequest({
    ...o,
    method: "GET",
    url: `${nsId}/queues/${encodeURIComponent(o.queue)}?api-version=${NAMESPACE_API_VERSION}`,
    what: `queue '${o.queue}' of Service Bus namespace '${o.namespace}'`,
    hint: "check the queue's name",
  });
  return endpoint;
}

/** A message body's content type when the sender names none: JSON if it parses as UTF-8 JSON, else text. */
export function guessContentType(body: Uint8Array): string {
  try {
    JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    return "application/json";
  } catch {
    return "text/plain";
  }
}

/** A received message as one JSON object for a person or a pipe: the body as text, or `bodyBase64` when it is not UTF-8. */
export function messageAsJson(m: ReceivedMessage): Record<string, unknown> {
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(m.body);
  } catch {
    text = undefined;
  }
  return {
    messageId: m.messageId, sequenceNumber: m.sequenceNumber, deliveryCount: m.deliveryCount, enqueuedTimeUtc: m.enqueuedTimeUtc,
    label: m.label, correlationId: m.correlationId, contentType: m.contentType, properties: m.properties,
    ...(text !== undefined ? { body: text } : { bodyBase64: Buffer.from(m.body).toString("base64") }),
  };
}
