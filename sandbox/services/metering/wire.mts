// The metering API's wire format (docs/azure-behaviour.md §1.1, §1.3, §1.4): response headers, JSON as
// the .NET service writes it, and the error factory every metering reply goes through.
import { randomBytes } from "node:crypto";
import type { Reply, RouteContext } from "../../core/http.mts";
import type { AcceptedEvent, UsageEventInput } from "./usage.mts";

const JSON_TYPE = "application/json; charset=utf-8";

/** Fields the service types as double: .NET writes an integral double as `5.0` (docs/azure-behaviour.md §1.3, §1.4 `"quantity":1.0`, §1.6 `processedQuantity:0.0`). */
const DOUBLE_FIELDS = new Set(["quantity", "submittedQuantity", "processedQuantity"]);

/** JSON.stringify, except that integral doubles keep their `.0`; undefined members are left out. */
export function toWireJson(value: unknown, key = ""): string {
  if (typeof value === "number" && DOUBLE_FIELDS.has(key) && Number.isInteger(value) && Math.abs(value) < 1e15) return `${value}.0`;
  if (Array.isArray(value)) return `[${value.map((v) => toWireJson(v)).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}:${toWireJson(v, k)}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export function json(status: number, body: unknown): Reply {
  return { status, headers: { "Content-Type": JSON_TYPE }, body: toWireJson(body) };
}

/** An empty-bodied reply (403: no body is documented, docs/azure-behaviour.md §1.4). */
export function empty(status: number): Reply {
  return { status };
}

// One ARR affinity value per sandbox process, as one App Service instance would set.
const ARR_AFFINITY = randomBytes(32).toString("hex");

/**
 * Headers every metering reply carries (docs/azure-behaviour.md §1.1): the client's x-ms-requestid and
 * x-ms-correlationid echoed; one that is missing takes the other's value, and with neither
 * both are the same new GUID (the framework's request id).
 */
export function withWireHeaders(c: RouteContext, reply: Reply): Reply {
  const sent = (name: string) => c.header(name)?.trim() || undefined;
  const requestId = sent("x-ms-requestid");
  const correlationId = sent("x-ms-correlationid");
  const stamp = new Date().toISOString().replace(/[-:]|\.\d+/g, "");
  return {
    ...reply,
    headers: {
      ...(reply.headers ?? {}),
      "x-ms-requestid": requestId ?? correlationId ?? c.requestId,
      "x-ms-correlationid": correlationId ?? requestId ?? c.requestId,
      "X-Azure-Ref": `${stamp}-${randomBytes(12).toString("hex")}`,
      "X-Content-Type-Options": "nosniff",
      "X-Powered-By": "ASP.NET",
      "Set-Cookie": `ARRAffinity=${ARR_AFFINITY};Path=/;HttpOnly;Secure`,
    },
  };
}

// ---------------------------------------------------------------- bodies

export interface Detail {
  message: string;
  target: string;
}

/** The 400 body of docs/azure-behaviour.md §1.4 (also the `error` of a failed batch item). */
export function badArgumentBody(details: Detail[], message = "One or more errors have occurred."): unknown {
  return {
    message,
    target: "usageEventRequest",
    code: "BadArgument",
    details: details.map((d) => ({ message: d.message, target: d.target, code: "BadArgument" })),
  };
}

export function badArgument(details: Detail[], message?: string): Reply {
  return json(400, badArgumentBody(details, message));
}

/** The 200 body of a single accepted event, also an accepted batch item (docs/azure-behaviour.md §1.3). */
export function acceptedBody(e: AcceptedEvent, status = "Accepted"): unknown {
  return {
    usageEventId: e.usageEventId,
    status,
    messageTime: e.messageTime,
    resourceId: e.resourceId,
    resourceUri: e.resourceUri,
    quantity: e.quantity,
    dimension: e.dimension,
    effectiveStartTime: e.effectiveStartTime,
    planId: e.planId,
  };
}

/** The 409 body, also the `error` of a Duplicate batch item: the original event, status Duplicate. */
export function duplicateBody(original: AcceptedEvent): unknown {
  return {
    additionalInfo: { acceptedMessage: acceptedBody(original, "Duplicate") },
    message: "This usage event already exist.",
    code: "Conflict",
  };
}

/** A failed batch item (docs/azure-behaviour.md §1.4): no usageEventId, messageTime = now, the event's fields echoed as sent. */
export function failedItem(status: string, messageTime: string, error: unknown, input: UsageEventInput): unknown {
  return {
    status,
    messageTime,
    error,
    resourceId: input.resourceId,
    resourceUri: input.resourceUri,
    quantity: input.quantity,
    dimension: input.dimension,
    effectiveStartTime: input.effectiveStartTime,
    planId: input.planId,
  };
}

const FAULT_TEXTS: Record<number, [code: string, message: string]> = {
  400: ["BadArgument", "One or more errors have occurred."],
  404: ["NotFound", "The requested resource was not found."],
  408: ["RequestTimeout", "The request timed out."],
  409: ["Conflict", "This usage event already exist."],
  429: ["TooManyRequests", "Rate limit is exceeded. Try again later."],
  500: ["InternalServerError", "An error has occurred."],
  502: ["BadGateway", "The upstream service did not answer."],
  503: ["ServiceUnavailable", "The service is temporarily unavailable. Try again later."],
  504: ["GatewayTimeout", "The upstream service timed out."],
};

/** An injected fault in the service's format: 401/403 empty (docs/azure-behaviour.md §1.4), anything else {message, code}. */
export function faultBody(status: number): Reply {
  if (status === 401 || status === 403 || status === 204 || status === 304) return empty(status);
  const [code, message] = FAULT_TEXTS[status] ?? [status >= 500 ? "ServerError" : "Error", `The request failed with HTTP ${status}.`];
  return json(status, { message, code });
}
