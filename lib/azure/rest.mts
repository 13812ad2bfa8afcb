// One HTTP exchange with a data-plane service (Key Vault, Service Bus) through
// @azure/core-rest-pipeline: bearer token from a TokenCredential for one scope (cached and
// refreshed by the policy), retries on throttling, 5xx and network errors, request ids. Every
// answer comes back as it is (no throw on 4xx/5xx) with its body as bytes; callers map statuses
// to errors. The pipeline is imported lazily so scripts start fast.
import type { TokenCredential } from "@azure/identity";

export interface RestRequest {
  method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Milliseconds before the request is abandoned; 0 = none. */
  timeoutMs?: number;
  /** Cancels the request (a long poll when the user presses Ctrl-C). */
  abortSignal?: AbortSignal;
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
export const REST_MAX_RETRIES = 3;
const ALL_STATUSES = new Set([Number.POSITIVE_INFINITY]);

async function _readBody(response: { readableStreamBody?: AsyncIterable<unknown> | NodeJS.ReadableStream; browserStreamBody?: ReadableStream<Uint8Array>; bodyAsText?: string | null }): Promise<Uint8Array> {
  if (response.readableStreamBody) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.readableStreamBody as AsyncIterable<Uint8Array | string>) {
      chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
    }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
  if (response.browserStreamBody) return new Uint8Array(await new Response(response.browserStreamBody).arrayBuffer());
  return new TextEncoder().encode(response.bodyAsText ?? "");
}

/**
 * A client that authenticates every request with `credential` for `scope`.
 *
 * @example
 * const client = await createRestClient({ credential, scope: "https://vault.azure.net/.default" });
 * const res = await client.send({ method: "GET", url: `${vaultUrl}secrets/name?api-version=7.4` });
 */
export async function createRestClient(options: { credential: TokenCredential; scope: string; maxRetries?: number }): Promise<RestClient> {
  const rest = await import("@azure/core-rest-pipeline");
  const pipeline = rest.createPipelineFromOptions({ retryOptions: { maxRetries: options.maxRetries ?? REST_MAX_RETRIES } });
  pipeline.addPolicy(rest.bearerTokenAuthenticationPolicy({ credential: options.credential, scopes: options.scope }));
  const httpClient = rest.createDefaultHttpClient();
  return {
    async send(request) {
      const req = rest.createPipelineRequest({
        url: request.url,
        method: request.method,
        headers: rest.createHttpHeaders(request.headers ?? {}),
        body: request.body,
        timeout: request.timeoutMs ?? 0,
        abortSignal: request.abortSignal,
        streamResponseStatusCodes: ALL_STATUSES,
      });
      const res = await pipeline.sendRequest(httpClient, req);
      const body = await _readBody(res as never);
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
