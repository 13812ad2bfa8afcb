// Emulated Marketplace metering API (docs/azure-behaviour.md §1): POST /api/usageEvent, POST
// /api/batchUsageEvent, GET /api/usageEvents. This file is the HTTP layer (route table,
// api-version, bearer, body binding); the rules live in usage.mts, the report in
// report.mts, the wire format in wire.mts.
import { HttpReplyError, type Reply, type Route, type RouteContext, type ServiceDef } from "../../core/http.mts";
import { BearerError } from "../../core/tokens.mts";
import type { SandboxContext } from "../../core/context.mts";
import { queryParam, usageReport } from "./report.mts";
import { appsCallerMayBill, formatMessageTime, listAcceptedEvents, readUsageEvent, UsageInputError, UsageLedger, type CallerClaims, type UsageEventInput } from "./usage.mts";
import { acceptedBody, badArgument, badArgumentBody, duplicateBody, empty, failedItem, faultBody, json, withWireHeaders } from "./wire.mts";

const API_VERSION = "2018-08-31";
const MAX_BATCH = 25;
const BATCH_SIZE_MESSAGE = `The batch contained more than ${MAX_BATCH} usage events.`;

/** Answers now with `reply` (handlers read top to bottom; the route wrapper catches it). */
function _reject(reply: Reply): never {
  throw new HttpReplyError(reply);
}

/**
 * `api-version=2018-08-31` only; any other or none is a 400 in the shape of Microsoft's
 * SaaS API emulator (docs/azure-behaviour.md §1.1, unconfirmed). Checked first: API versioning picks the
 * action before any authorization filter runs.
 */
function _requireApiVersion(c: RouteContext): void {
  const v = queryParam(c.url, "api-version");
  if (!v) {
    _reject(json(400, { Error: { Code: "ApiVersionUnspecified", Message: "An API version is required, but was not specified." } }));
  }
  if (v !== API_VERSION) {
    const uri = `${c.url.pathname}${c.url.search}`;
    _reject(json(400, {
      Error: { Code: "UnsupportedApiVersion", Message: `The HTTP resource that matches the request URI '${uri}' does not support the API version '${v}'.` },
    }));
  }
}

/** A JSON body or the 415 / 400 ASP.NET answers (Content-Type must be JSON, body must parse). */
function _readJson(c: RouteContext): unknown {
  const type = (c.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json" && type !== "text/json" && !/^application\/[\w.-]+\+json$/.test(type)) {
    _reject({
      status: 415,
      headers: { "Content-Type": "application/problem+json; charset=utf-8" },
      body: JSON.stringify({ type: "https://tools.ietf.org/html/rfc7231#section-6.5.13", title: "Unsupported Media Type", status: 415, traceId: c.requestId }),
    });
  }
  const text = c.text();
  if (!text.trim()) _reject(badArgument([{ message: "A non-empty request body is required.", target: "usageEventRequest" }]));
  try {
    return JSON.parse(text);
  } catch {
    return _reject(badArgument([{ message: "The request body is not valid JSON.", target: "usageEventRequest" }]));
  }
}

function _bindEvent(raw: unknown, where?: string): UsageEventInput {
  try {
    return readUsageEvent(raw, where);
  } catch (err) {
    if (err instanceof UsageInputError) _reject(badArgument([{ message: err.message, target: err.target }]));
    throw err;
  }
}

export function createMeteringService(ctx: SandboxContext): ServiceDef {
  const { state, tokens } = ctx;
  const ledger = new UsageLedger(state, () => listAcceptedEvents(state));

  /** Bearer check (docs/azure-behaviour.md §1.7): signed by the sandbox Entra, an accepted audience, in time; else 403 with no body. */
  const authenticate = async (c: RouteContext): Promise<CallerClaims> => {
    try {
      return await tokens.verifyBearer(c.header("authorization"), state.options.metering.audiences);
    } catch (err) {
      if (err instanceof BearerError) _reject(empty(403));
      throw err;
    }
  };

  const postUsageEvent = async (c: RouteContext): Promise<Reply> => {
    _requireApiVersion(c);
    const claims = await authenticate(c);
    const verdict = ledger.submit(_bindEvent(_readJson(c)), claims, state.now());
    switch (verdict.status) {
      case "Accepted":
        return json(200, acceptedBody(verdict.event));
      case "Duplicate":
        return json(409, duplicateBody(verdict.original));
      case "ResourceNotAuthorized":
        return empty(403); // "Client is not authorized for this usage resource." has no documented body
      default:
        return badArgument([{ message: verdict.message, target: verdict.target }]);
    }
  };

  const postBatch = async (c: RouteContext): Promise<Reply> => {
    _requireApiVersion(c);
    const claims = await authenticate(c);
    const raw = _readJson(c) as { request?: unknown } | null;
    const items = raw !== null && typeof raw === "object" && !Array.isArray(raw) ? raw.request : undefined;
    if (!Array.isArray(items)) _reject(badArgument([{ message: "The request field is required and must be an array of usage events.", target: "request" }]));
    // The documented text names only "more than 25"; an empty batch gets the same answer (spec minItems 1).
    if (items.length < 1 || items.length > MAX_BATCH) _reject(badArgument([{ message: BATCH_SIZE_MESSAGE, target: "request" }], BATCH_SIZE_MESSAGE));
    const inputs = items.map((item, i) => _bindEvent(item, `request[${i}].`));
    const result = inputs.map((input) => {
      // Items run in request order against the same ledger: a repeat inside the batch is a Duplicate.
      const now = state.now();
      const verdict = ledger.submit(input, claims, now);
      if (verdict.status === "Accepted") return acceptedBody(verdict.event);
      const messageTime = formatMessageTime(now);
      if (verdict.status === "Duplicate") return failedItem("Duplicate", messageTime, duplicateBody(verdict.original), input);
      // A caller that may not bill this item's app: the StatusEnum's ResourceNotAuthorized, per item,
      // instead of failing the whole batch with 403 (the other items may be its own apps').
      const status = verdict.status === "Generic" ? state.options.metering.errorStatusName : verdict.status;
      return failedItem(status, messageTime, badArgumentBody([{ message: verdict.message, target: verdict.target }]), input);
    });
    return json(200, { result, count: result.length });
  };

  const getUsageEvents = async (c: RouteContext): Promise<Reply> => {
    _requireApiVersion(c);
    const claims = await authenticate(c);
    // The real API answers per publisher. A caller sees the events of every app whose offer's
    // publisher also publishes an app the caller may bill (its own MRG's app); anyone else is refused.
    const mine = appsCallerMayBill(state, claims);
    if (mine.length === 0) _reject(empty(403));
    const publishers = new Set(mine.map((a) => String((a.plan as { publisher?: string } | undefined)?.publisher ?? "")));
    const visible = listAcceptedEvents(state).filter((e) => {
      const app = state.getResource(e.resourceUri);
      return app !== undefined && publishers.has(String((app.plan as { publisher?: string } | undefined)?.publisher ?? ""));
    });
    try {
      return json(200, usageReport(state, visible, c.url));
    } catch (err) {
      if (err instanceof UsageInputError) return badArgument([{ message: err.message, target: err.target }]);
      throw err;
    }
  };

  const route = (method: string, path: string, handler: (c: RouteContext) => Promise<Reply>): Route => ({
    method,
    path,
    handler: async (c) => {
      let reply: Reply;
      try {
        reply = await handler(c);
      } catch (err) {
        if (!(err instanceof HttpReplyError)) throw err;
        reply = err.reply;
      }
      return withWireHeaders(c, reply);
    },
  });

  return {
    name: "metering",
    // ASP.NET routing ignores case: /api/UsageEvent is the same route.
    caseInsensitive: true,
    routes: [
      route("POST", "/api/usageEvent", postUsageEvent),
      route("POST", "/api/batchUsageEvent", postBatch),
      route("GET", "/api/usageEvents", getUsageEvents),
    ],
    notFound: (c, allowed) => {
      if (allowed.length === 0) {
        return withWireHeaders(c, json(404, { message: `No HTTP resource was found that matches the request URI '${c.url.pathname}'.`, code: "NotFound" }));
      }
      const reply = json(405, { message: `The requested resource does not support http method '${c.method}'.`, code: "MethodNotAllowed" });
      return withWireHeaders(c, { ...reply, headers: { ...reply.headers, Allow: allowed.join(", ") } });
    },
    faultReply: (c, status) => withWireHeaders(c, faultBody(status)),
  };
}
