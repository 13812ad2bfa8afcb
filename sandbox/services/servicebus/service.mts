// Emulated Service Bus REST runtime API (docs/azure-behaviour.md §6.1): one HTTPS port per namespace (the
// namespace told apart by the local port, like Key Vault's vaults; its serviceBusEndpoint is
// `https://127.0.0.1:<port>/`). Per request: bearer token (audience https://servicebus.azure.net,
// the namespace's tenant) → 401; RBAC data action on the queue (Azure Service Bus Data Sender /
// Receiver / Owner at queue, namespace, resource group or subscription scope) → 403; the queue
// exists → 410; then the operation. Errors use Service Bus's XML body `<Error><Code>…</Code><Detail>…</Detail></Error>`.
//
// Unconfirmed behaviour and the choices made (docs/azure-behaviour.md §6.2):
// - user properties travel as HTTP headers; string values JSON-quoted ("x"), numbers and booleans bare;
// - no `timeout` on a receive → answer at once (204 when empty); `timeout=S` long-polls up to
//   options.serviceBus.maxReceiveTimeoutS;
// - batch send takes `application/vnd.microsoft.servicebus.json` `[{"Body","BrokerProperties","UserProperties"}]`;
// - SAS (`SharedAccessSignature …`) is not emulated: no namespace keys exist here → 401.
import * as jose from "jose";
import { HttpReplyError, type Reply, type RouteContext, type ServiceDef } from "../../core/http.mts";
import { BearerError } from "../../core/tokens.mts";
import type { SandboxContext, ServiceBusHooks } from "../../core/context.mts";
import {
  abandon, complete, enqueue, findLocked, hasAvailable, lockNext, namespaceStore, renew, takeNext,
  type PropertyValue, type SbMessage, type SbNamespace, type SbQueue, type SenderProperties,
} from "./store.mts";

export const SEND_ACTION = "Microsoft.ServiceBus/namespaces/messages/send/action";
export const RECEIVE_ACTION = "Microsoft.ServiceBus/namespaces/messages/receive/action";
const DLQ_SEGMENT = "$deadletterqueue";
const BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json";
const SENDER_PROPERTIES = ["MessageId", "Label", "CorrelationId", "ReplyTo", "To", "SessionId", "ContentType", "TimeToLive"] as const;
/** Headers that are HTTP's or Service Bus's own, never user properties. */
const RESERVED_HEADERS = new Set([
  "authorization", "content-type", "content-length", "host", "connection", "accept", "accept-encoding", "accept-language", "user-agent",
  "brokerproperties", "transfer-encoding", "expect", "keep-alive", "te", "traceparent", "tracestate", "request-id", "date", "cache-control", "pragma", "origin", "referer",
]);
const POLL_INTERVAL_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sbError(status: number, detail: string, requestId: string, tracker: string): Reply {
  const time = new Date().toISOString();
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return {
    status,
    headers: { "Content-Type": "application/xml; charset=utf-8" },
    body: `<Error><Code>${status}</Code><Detail>${esc(detail)} TrackingId:${requestId}_G0, SystemTracker:${esc(tracker)}, Timestamp:${time}</Detail></Error>`,
  };
}

/** A user property value from a header: JSON-quoted string, number, boolean, or a bare string. */
function _parsePropertyValue(raw: string): PropertyValue {
  const t = raw.trim();
  if (/^".*"$/s.test(t)) {
    try {
      return JSON.parse(t) as string;
    } catch { /* a bare string below */ }
  }
  if (t === "true" || t === "false") return t === "true";
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return Number(t);
  return t;
}

function _formatPropertyValue(v: PropertyValue): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

export function createServiceBusService(ctx: SandboxContext): { service: ServiceDef; hooks: ServiceBusHooks } {
  const { state, tokens } = ctx;
  const namespaces = namespaceStore(state);
  const byPort = new Map<number, SbNamespace>();
  const opening = new Map<string, Promise<string>>();

  interface SbCall {
    c: RouteContext;
    ns: SbNamespace;
    q: SbQueue;
    dlq: boolean;
    nowMs: number;
  }

  const hostOf = (ns: SbNamespace) => `${ns.name}.servicebus.windows.net`;

  /** 401 / 403 / 410, then `fn`. */
  const handle = (action: string, fn: (k: SbCall) => Reply | Promise<Reply>) => async (c: RouteContext): Promise<Reply> => {
    const ns = byPort.get(c.localPort);
    const queueName = c.params.queue ?? "";
    const dlq = (c.params.sub ?? "") !== "";
    const tracker = ns ? `${hostOf(ns)}:Queue:${queueName}${dlq ? "|$DeadLetterQueue" : ""}` : "unknown";
    const fail: (status: number, detail: string) => never = (status, detail) => {
      throw new HttpReplyError(sbError(status, detail, c.requestId, tracker));
    };
    try {
      if (!ns) fail(404, "The namespace no longer exists.");
      if (dlq && c.params.sub.toLowerCase() !== DLQ_SEGMENT) fail(400, `The entity path '${queueName}/${c.params.sub}' is not a queue or its $DeadLetterQueue.`);
      const header = c.header("authorization") ?? "";
      if (/^SharedAccessSignature\s/i.test(header)) {
        fail(401, "InvalidSignature: The token has an invalid signature (the sandbox's namespaces have no shared access keys; use a Microsoft Entra token).");
      }
      let claims: jose.JWTPayload;
      try {
        claims = await tokens.verifyBearer(header || undefined, state.options.serviceBus.audiences);
      } catch (err) {
        if (!(err instanceof BearerError)) throw err;
        const detail = err.code === "missing" ? "MissingToken: The authorization header was not found."
          : err.code === "audience" ? `InvalidAudience: The token audience is not valid; Service Bus expects a token for ${state.options.serviceBus.audiences.join(" or ")}.`
          : err.code === "expired" ? "ExpiredToken: The token is expired."
          : "InvalidToken: The token is not valid.";
        fail(401, detail);
      }
      if (String(claims.tid ?? "").toLowerCase() !== ns.tenantId.toLowerCase()) {
        fail(401, `InvalidIssuer: Token issuer is invalid. The token is from tenant '${String(claims.tid)}', the namespace belongs to tenant '${ns.tenantId}'.`);
      }
      const queue = ns.queues.get(queueName.toLowerCase());
      const scope = queue?.id ?? `${ns.id}/queues/${queueName}`;
      if (!state.isAllowed(String(claims.oid ?? ""), scope, { dataAction: action })) {
        const claim = action === SEND_ACTION ? "Send" : "Listen";
        fail(403, `Unauthorized access. '${claim}' claim(s) are required to perform this operation. Resource: 'sb://${hostOf(ns)}/${queueName.toLowerCase()}'. The principal '${String(claims.oid)}' needs the Azure Service Bus Data ${claim === "Send" ? "Sender" : "Receiver"} role (or Data Owner) on the queue or namespace.`);
      }
      if (!queue) fail(410, `The messaging entity 'sb://${hostOf(ns)}/${queueName.toLowerCase()}' could not be found. To know more visit https://aka.ms/sbResourceMgrExceptions.`);
      return await fn({ c, ns, q: queue, dlq, nowMs: state.now() });
    } catch (err) {
      if (err instanceof HttpReplyError) return err.reply;
      throw err;
    }
  };

  const badRequest: (k: SbCall, detail: string) => never = (k, detail) => {
    throw new HttpReplyError(sbError(400, detail, k.c.requestId, `${hostOf(k.ns)}:Queue:${k.q.name}`));
  };

  /** BrokerProperties of a send, checked: only the settable system properties, with their types. */
  const senderProperties = (k: SbCall, raw: unknown): SenderProperties => {
    if (raw === undefined || raw === null) return {};
    if (typeof raw !== "object" || Array.isArray(raw)) badRequest(k, "BrokerProperties must be a JSON object.");
    const out: SenderProperties = {};
    for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
      if (!(SENDER_PROPERTIES as readonly string[]).includes(key)) continue; // read-only ones are ignored, as on receive they are the broker's
      if (key === "TimeToLive") {
        if (typeof v !== "number" || !(v > 0)) badRequest(k, "BrokerProperties.TimeToLive must be a positive number of seconds.");
        out.TimeToLive = v as number;
      } else {
        if (typeof v !== "string") badRequest(k, `BrokerProperties.${key} must be a string.`);
        (out as Record<string, unknown>)[key] = v;
      }
    }
    if (out.SessionId !== undefined) badRequest(k, "Sessions are not supported by the sandbox's queues (requiresSession is false).");
    return out;
  };

  const send = (k: SbCall): Reply => {
    if (k.dlq) badRequest(k, "Messages cannot be sent to a $DeadLetterQueue.");
    const type = (k.c.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type === BATCH_CONTENT_TYPE) {
      let items: unknown;
      try {
        items = JSON.parse(k.c.text());
      } catch {
        badRequest(k, "The batch is not valid JSON.");
      }
      if (!Array.isArray(items) || items.length === 0) badRequest(k, "A batch must be a non-empty JSON array of {Body, BrokerProperties, UserProperties}.");
      const prepared = (items as unknown[]).map((it) => {
        const o = it as { Body?: unknown; BrokerProperties?: unknown; UserProperties?: unknown };
        if (!o || typeof o !== "object" || typeof o.Body !== "string") badRequest(k, "Every batch item needs a string 'Body'.");
        const props = o.UserProperties ?? {};
        if (typeof props !== "object" || Array.isArray(props) || !Object.values(props as object).every((v) => ["string", "number", "boolean"].includes(typeof v))) {
          badRequest(k, "UserProperties must be an object of strings, numbers and booleans.");
        }
        return { body: Buffer.from(o.Body as string, "utf8"), sender: senderProperties(k, o.BrokerProperties), userProperties: props as Record<string, PropertyValue> };
      });
      for (const p of prepared) enqueue(k.q, p, k.nowMs);
      return { status: 201 };
    }
    let broker: unknown;
    const rawBroker = k.c.header("brokerproperties");
    if (rawBroker !== undefined) {
      try {
        broker = JSON.parse(rawBroker);
      } catch {
        badRequest(k, "The BrokerProperties header is not valid JSON.");
      }
    }
    const userProperties: Record<string, PropertyValue> = {};
    const raw = k.c.req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i];
      const lower = name.toLowerCase();
      if (RESERVED_HEADERS.has(lower) || lower.startsWith("x-ms-") || lower.startsWith("sec-fetch-")) continue;
      userProperties[name] = _parsePropertyValue(raw[i + 1]);
    }
    enqueue(k.q, { body: k.c.body, contentType: k.c.header("content-type"), sender: senderProperties(k, broker), userProperties }, k.nowMs);
    return { status: 201 };
  };

  const messageReply = (k: SbCall, m: SbMessage, status: number, locked: boolean): Reply => {
    const broker: Record<string, unknown> = {
      DeliveryCount: m.deliveryCount,
      EnqueuedSequenceNumber: 0,
      EnqueuedTimeUtc: new Date(m.enqueuedAtMs).toUTCString(),
      ...(locked && m.lock ? { LockToken: m.lock.token, LockedUntilUtc: new Date(m.lock.untilMs).toUTCString() } : {}),
      MessageId: m.messageId,
      SequenceNumber: m.sequenceNumber,
      State: "Active",
      TimeToLive: m.sender.TimeToLive ?? 1209600,
    };
    for (const key of ["Label", "CorrelationId", "ReplyTo", "To"] as const) if (m.sender[key] !== undefined) broker[key] = m.sender[key];
    const headers: Record<string, string> = {
      BrokerProperties: JSON.stringify(broker),
      "Content-Type": m.contentType ?? "application/octet-stream",
    };
    const user = { ...m.userProperties, ...(m.deadLetterReason ? { DeadLetterReason: m.deadLetterReason, DeadLetterErrorDescription: m.deadLetterErrorDescription ?? "" } : {}) };
    for (const [name, v] of Object.entries(user)) headers[name] = _formatPropertyValue(v);
    if (locked && m.lock) {
      const base = (k.c.header("host") ? `https://${k.c.header("host")}` : k.ns.endpoint.replace(/\/$/, ""));
      headers.Location = `${base}/${encodeURIComponent(k.q.name)}${k.dlq ? "/$DeadLetterQueue" : ""}/messages/${m.sequenceNumber}/${m.lock.token}`;
    }
    return { status, headers, body: m.body };
  };

  /** Long poll: `timeout` seconds (capped); no timeout → answer at once. */
  const waitForMessage = async (k: SbCall): Promise<boolean> => {
    const raw = k.c.url.searchParams.get("timeout");
    let timeoutS = 0;
    if (raw !== null) {
      timeoutS = Number(raw);
      if (!Number.isFinite(timeoutS) || timeoutS < 0) badRequest(k, `The timeout '${raw}' is not a number of seconds.`);
    }
    const deadline = Date.now() + Math.min(timeoutS, state.options.serviceBus.maxReceiveTimeoutS) * 1000;
    for (;;) {
      if (hasAvailable(k.q, k.dlq, state.now())) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(POLL_INTERVAL_MS, Math.max(1, deadline - Date.now())));
    }
  };

  const peekLock = async (k: SbCall): Promise<Reply> => {
    if (!await waitForMessage(k)) return { status: 204 };
    const m = lockNext(k.q, k.dlq, state.now());
    return m ? messageReply(k, m, 201, true) : { status: 204 };
  };

  const receiveAndDelete = async (k: SbCall): Promise<Reply> => {
    if (!await waitForMessage(k)) return { status: 204 };
    const m = takeNext(k.q, k.dlq, state.now());
    if (m && !k.dlq) k.q.completedCount++;
    return m ? messageReply(k, m, 200, false) : { status: 204 };
  };

  const lockOp = (op: "complete" | "unlock" | "renew") => (k: SbCall): Reply => {
    const m = findLocked(k.q, k.dlq, k.c.params.id, k.c.params.lock, k.nowMs);
    if (!m) {
      throw new HttpReplyError(sbError(404,
        `The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue, or was received by a different receiver instance (message '${k.c.params.id}', lock '${k.c.params.lock}').`,
        k.c.requestId, `${hostOf(k.ns)}:Queue:${k.q.name}`));
    }
    if (op === "complete") complete(k.q, k.dlq, m);
    else if (op === "unlock") abandon(k.q, k.dlq, m);
    else renew(k.q, m, k.nowMs);
    return { status: 200 };
  };

  const routes = [];
  for (const prefix of ["/:queue", "/:queue/:sub"]) {
    routes.push(
      { method: "POST", path: `${prefix}/messages`, handler: handle(SEND_ACTION, send) },
      { method: "POST", path: `${prefix}/messages/head`, handler: handle(RECEIVE_ACTION, peekLock) },
      { method: "DELETE", path: `${prefix}/messages/head`, handler: handle(RECEIVE_ACTION, receiveAndDelete) },
      { method: "DELETE", path: `${prefix}/messages/:id/:lock`, handler: handle(RECEIVE_ACTION, lockOp("complete")) },
      { method: "PUT", path: `${prefix}/messages/:id/:lock`, handler: handle(RECEIVE_ACTION, lockOp("unlock")) },
      { method: "POST", path: `${prefix}/messages/:id/:lock`, handler: handle(RECEIVE_ACTION, lockOp("renew")) },
    );
  }

  const service: ServiceDef = {
    name: "servicebus",
    caseInsensitive: true,
    routes,
    notFound: (c, allowed) => sbError(allowed.length ? 405 : 404,
      allowed.length ? `The method ${c.method} is not supported here.` : `The sandbox's Service Bus does not serve ${c.method} ${c.url.pathname}.`,
      c.requestId, byPort.get(c.localPort)?.name ?? "unknown"),
    faultReply: (c, status) => sbError(status, status === 429 || status === 503 ? "The server is busy. Please retry the operation." : `The service returned HTTP ${status} (injected by the sandbox).`, c.requestId, byPort.get(c.localPort)?.name ?? "unknown"),
  };

  const hooks: ServiceBusHooks = {
    openNamespace: (ns) => {
      const key = ns.id.toLowerCase();
      const existing = namespaces.get(key);
      if (existing) return Promise.resolve(existing.endpoint);
      let p = opening.get(key);
      if (!p) {
        p = (async () => {
          const server = await ctx.listenHttps(service);
          const data: SbNamespace = { id: ns.id, name: ns.name, tenantId: ns.tenantId, endpoint: `${server.url}/`, port: server.port, queues: new Map(), close: () => server.close() };
          namespaces.set(key, data);
          byPort.set(server.port, data);
          return data.endpoint;
        })().finally(() => opening.delete(key));
        opening.set(key, p);
      }
      return p;
    },
    closeNamespace: async (resourceId) => {
      const data = namespaces.get(resourceId.toLowerCase());
      if (!data) return;
      namespaces.delete(resourceId.toLowerCase());
      byPort.delete(data.port);
      await data.close();
    },
  };
  return { service, hooks };
}
