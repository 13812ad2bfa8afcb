// A core-rest-pipeline policy that writes every call of a data-plane client to the audit log:
// the request (Authorization dropped, secret values redacted), the final answer after the
// retries, or the error when none came. The publisher context puts it into every REST client it
// makes, so no script writes exchange records itself.
import { createHash } from "node:crypto";
import type { PipelinePolicy, PipelineRequest, PipelineResponse } from "@azure/core-rest-pipeline";
import type { ExchangeRecorder } from "./records.mts";

/** How one request is recorded: its operation, and what stands for bodies that must not be logged. */
export interface RequestAudit {
  /** `<service>.<action>`, e.g. `keyvault.setSecret`. */
  operation: string;
  /** Recorded instead of the request body (e.g. a message body's size and SHA-256). */
  body?: unknown;
  /** `digest`: the response body is recorded by size and SHA-256 only (message contents). Default `json`. */
  responseBody?: "json" | "digest";
  /** More fields for the record. */
  details?: Record<string, unknown>;
}

/** Each request's audit description, set by the REST client that sends it (lib/azure/rest.mts). */
export const REQUEST_AUDITS = new WeakMap<PipelineRequest, RequestAudit>();
/** The body bytes a pipeline read from a streamed response (lib/azure/rest.mts stores them here). */
export const RESPONSE_BODIES = new WeakMap<PipelineResponse, Uint8Array>();

/** A body by its size and SHA-256: proof of what was sent without its content. */
export function bodyDigest(bytes: Uint8Array): { bytes: number; sha256: string } {
  return { bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
}

function _parse(body: unknown): unknown {
  if (body === undefined || body === null || body === "") return null;
  if (typeof body !== "string") return body;
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

function _text(bytes: Uint8Array | undefined, fallback: string | null | undefined): string | null {
  if (bytes) return new TextDecoder().decode(bytes);
  return fallback ?? null;
}

/**
 * A per-call policy: the exchange record of each call (the final answer, after the retries),
 * written before the answer is handed back, so a process that dies after a call still has its
 * record. Authorization never reaches the record: the bearer policy adds it per attempt, inside.
 */
export function auditPolicy(record: ExchangeRecorder): PipelinePolicy {
  return {
    name: "meteringAudit",
    async sendRequest(request, next) {
      const audit = REQUEST_AUDITS.get(request) ?? { operation: `${request.method} ${new URL(request.url).host}` };
      const headers: Record<string, string> = {};
      for (const [name, value] of request.headers) headers[name] = value;
      const body = "body" in audit ? audit.body
        : typeof request.body === "string" ? _parse(request.body)
        : request.body instanceof Uint8Array ? bodyDigest(request.body)
        : null;
      const sent = { method: request.method, url: request.url, headers, body };
      let response: PipelineResponse;
      try {
        response = await next(request);
      } catch (error) {
        await record({ operation: audit.operation, ...audit.details, request: sent, error: { code: (error as { code?: string }).code, message: String((error as Error)?.message ?? error).split("\n")[0] } });
        throw error;
      }
      const bytes = RESPONSE_BODIES.get(response);
      const answer = audit.responseBody === "digest"
        ? (bytes && bytes.length > 0 ? bodyDigest(bytes) : null)
        : _parse(_text(bytes, response.bodyAsText));
      const broker = response.headers.get("brokerproperties");
      await record({
        operation: audit.operation,
        ...audit.details,
        request: sent,
        response: {
          status: response.status,
          requestId: response.headers.get("x-ms-request-id") ?? response.headers.get("x-ms-client-request-id") ?? undefined,
          body: answer,
          ...(broker ? { brokerProperties: _parse(broker) } : {}),
        },
      });
      return response;
    },
  };
}
