// One HTTP exchange with a data-plane service (Key Vault, Service Bus) through the one pipeline
// builder (lib/core/http.mts: retries on throttling, 5xx and network errors, a per-try timeout),
// with a bearer token from a TokenCredential for one scope (cached and refreshed by the policy)
// and the caller's policies (the publisher context adds the audit policy). Every answer comes
// back as it is (no throw on 4xx/5xx) with its body as bytes; callers map statuses to errors.
// The pipeline is imported lazily so scripts start fast.
import { REQUEST_AUDITS, RESPONSE_BODIES, type RequestAudit } from "../audit/policy.mts";
import { readAllBytes } from "../core/bytes.mts";
import type { AdditionalPolicyConfig } from "../core/http.mts";
import type { Settings } from "../core/settings.mts";
import type { TokenCredential } from "@azure/identity";

export interface RestRequest {
  method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Milliseconds before the call is abandoned, retries included; 0 = none. */
  timeoutMs?: number;
  /** Cancels the request (a long poll when the user presses Ctrl-C). */
  abortSignal?: AbortSignal;
  /** How the audit policy records this call (its operation; what stands for bodies not to be logged). */
  audit?: RequestAudit;
}

export interface RestResponse {
  status: number;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: Uint8Array;
  text(): string;
  /** The JSON body, or undefined when it is empty or not JSON. */
  json<T = unknown>(): T | undefined;
}

export interface RestClient {
  send(request: RestRequest): Promise<RestResponse>;
}

/** Attempts after the first, for throttling (Retry-After honoured), 5xx and connection failures. */
const REST_MAX_RETRIES = 3;
const ALL_STATUSES = new Set([Number.POSITIVE_INFINITY]);

async function _readBody(response: { readableStreamBody?: AsyncIterable<unknown> | NodeJS.ReadableStream; browserStreamBody?: ReadableStream<Uint8Array>; bodyAsText?: string | null }): Promise<Uint8Array> {
  if (response.readableStreamBody) return await readAllBytes(response.readableStreamBody as AsyncIterable<Uint8Array | string>);
  if (response.browserStreamBody) return new Uint8Array(await new Response(response.browserStreamBody).arrayBuffer());
  return new TextEncoder().encode(response.bodyAsText ?? "");
}

/**
 * A client that authenticates every request with `credential` for `scope`. Get one from the
 * publisher context (`publisher.restClient`), which adds the audit policy.
 *
 * @example
 * const client = await publisher.restClient({ credential, scope: "https://vault.azure.net/.default", record: { customer } });
 * const res = await client.send({ method: "GET", url: `${vaultUrl}secrets/name?api-version=7.4`, audit: { operation: "keyvault.getSecret" } });
 */
export async function createRestClient(options: {
  credential: TokenCredential;
  scope: string;
  settings: Pick<Settings, "httpTryTimeoutMs">;
  maxRetries?: number;
  policies?: AdditionalPolicyConfig[];
}): Promise<RestClient> {
  const rest = await import("@azure/core-rest-pipeline");
  const { createHttpPipeline, deadline, TRY_TIMEOUTS } = await import("../core/http.mts");
  const { pipeline, httpClient } = await createHttpPipeline({
    settings: options.settings,
    retryOptions: { maxRetries: options.maxRetries ?? REST_MAX_RETRIES },
    policies: [
      ...(options.policies ?? []),
      // Each attempt's body, read in full once, so that the audit policy and the caller see the same bytes.
      {
        position: "perRetry",
        policy: {
          name: "meteringReadBody",
          async sendRequest(request, next) {
            const response = await next(request);
            RESPONSE_BODIES.set(response, await _readBody(response as never));
            return response;
          },
        },
      },
    ],
  });
  pipeline.addPolicy(rest.bearerTokenAuthenticationPolicy({ credential: options.credential, scopes: options.scope }), { phase: "Sign" });
  return {
    async send(request) {
      const limit = deadline(request.timeoutMs ?? 0, request.abortSignal);
      const req = rest.createPipelineRequest({
        url: request.url,
        method: request.method,
        headers: rest.createHttpHeaders(request.headers ?? {}),
        body: request.body,
        abortSignal: limit.signal,
        streamResponseStatusCodes: ALL_STATUSES,
      });
      if (request.audit) REQUEST_AUDITS.set(req, request.audit);
      // A long poll's one attempt may take its whole timeout.
      if (request.timeoutMs && request.timeoutMs > options.settings.httpTryTimeoutMs) TRY_TIMEOUTS.set(req, request.timeoutMs);
      let res;
      try {
        res = await pipeline.sendRequest(httpClient, req);
      } catch (error) {
        if (limit.expired) {
          const { RestError } = await import("@azure/core-rest-pipeline");
          throw new RestError(`no answer within ${(request.timeoutMs ?? 0) / 1000} s, retries included`, { code: "ETIMEDOUT", request: req });
        }
        throw error;
      } finally {
        limit.clear();
      }
      const body = RESPONSE_BODIES.get(res) ?? await _readBody(res as never);
      const headers: Record<string, string> = {};
      for (const [name, value] of res.headers) headers[name.toLowerCase()] = value;
      return {
        status: res.status,
        headers,
        body,
        text: () => new TextDecoder().decode(body),
        json<T>() {
          try {
            const t = new TextDecoder().decode(body);
            return t.trim() ? JSON.parse(t) as T : undefined;
          } catch {
            return undefined;
          }
        },
      };
    },
  };
}
