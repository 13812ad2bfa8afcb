// Pipeline policies every Azure SDK client of ours gets, on top of the SDK's own retry policy
// (exponential backoff with jitter on network errors, 408 and 5xx; Retry-After on 429/503):
// - a per-try timeout, so one hung attempt becomes a retryable ETIMEDOUT instead of eating
//   the whole deadline (the SDK's own `timeout` aborts without a retry and leaks its timer);
// - for Entra token requests of a federated credential created minutes ago, a retry of the
//   "no matching federated credential" errors, which last until the credential has propagated.
// The retry loops are the SDK's (core-rest-pipeline retryPolicy); these only decide.
import type { PipelinePolicy, PipelineRequest, PipelineRetryOptions, RetryStrategy } from "@azure/core-rest-pipeline";
import type { Settings } from "./settings.mts";

/** A policy for an SDK client's `additionalPolicies` (@azure/core-client's AdditionalPolicyConfig). */
export interface AdditionalPolicyConfig {
  policy: PipelinePolicy;
  position: "perCall" | "perRetry";
}

/** Retries of the SDK retry policy for our calls: 5 tries in all. */
export const DEFAULT_RETRY_OPTIONS: PipelineRetryOptions = { maxRetries: 4, retryDelayInMs: 800, maxRetryDelayInMs: 15_000 };
/** AADSTS codes Entra answers while a new federated credential is still propagating (docs/azure-behaviour.md §2.1, §2.6). */
export const PROPAGATION_AADSTS = [70021, 700213, 700211, 700016];
export const PROPAGATION_RETRY = { maxRetries: 5, retryDelayInMs: 3_000, maxRetryDelayInMs: 20_000 };

/** A longer per-try timeout for one request (a long poll that waits on the server by design). */
export const TRY_TIMEOUTS = new WeakMap<PipelineRequest, number>();

/**
 * A policy for the per-retry phase: aborts an attempt after `ms` and throws a RestError with
 * code ETIMEDOUT, which the SDK's exponential retry strategy treats as a network error.
 * An abort from the caller's own signal passes through unchanged.
 */
export function tryTimeoutPolicy(defaultMs: number): PipelinePolicy {
  return {
    name: "meteringTryTimeout",
    async sendRequest(request, next) {
      const ms = TRY_TIMEOUTS.get(request) ?? defaultMs;
      const outer = request.abortSignal;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), ms);
      const onOuterAbort = () => controller.abort();
      outer?.addEventListener("abort", onOuterAbort);
      request.abortSignal = controller.signal;
      try {
        return await next(request);
      } catch (error) {
        if (controller.signal.aborted && !outer?.aborted) {
          const { RestError } = await import("@azure/core-rest-pipeline");
          throw new RestError(`no answer within ${ms / 1000} s`, { code: "ETIMEDOUT", request });
        }
        throw error;
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener("abort", onOuterAbort);
        request.abortSignal = outer;
      }
    },
  };
}

/** The AADSTS code in an Entra error body (`error_codes` array, or the description text). */
export function aadstsOfBody(text: string | undefined | null): number | undefined {
  if (!text) return undefined;
  try {
    const codes = (JSON.parse(text) as { error_codes?: unknown }).error_codes;
    if (Array.isArray(codes) && typeof codes[0] === "number") return codes[0];
  } catch {
    // not JSON: look in the text
  }
  const m = /AADSTS(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * A strategy for core-rest-pipeline's retryPolicy: retries 400/401 answers of a token
 * endpoint whose AADSTS code says the federated credential has not propagated yet, with
 * exponential backoff and jitter. `onRetry` is told before each wait.
 */
export function propagationRetryStrategy(options: {
  retryDelayInMs?: number;
  maxRetryDelayInMs?: number;
  onRetry?: (info: { aadsts: number; retryAfterInMs: number; retryCount: number }) => void;
} = {}): RetryStrategy {
  const base = options.retryDelayInMs ?? PROPAGATION_RETRY.retryDelayInMs;
  const max = options.maxRetryDelayInMs ?? PROPAGATION_RETRY.maxRetryDelayInMs;
  return {
    name: "federatedCredentialPropagation",
    retry({ retryCount, response }) {
      if (!response || (response.status !== 400 && response.status !== 401) || !/\/oauth2\/(v2\.0\/)?token\b/.test(response.request.url)) {
        return { skipStrategy: true };
      }
      const aadsts = aadstsOfBody(response.bodyAsText);
      if (aadsts === undefined || !PROPAGATION_AADSTS.includes(aadsts)) return { skipStrategy: true };
      const clamped = Math.min(max, base * 2 ** retryCount);
      const retryAfterInMs = clamped / 2 + Math.random() * (clamped / 2);
      options.onRetry?.({ aadsts, retryAfterInMs, retryCount });
      return { retryAfterInMs };
    },
  };
}

export interface SdkClientOptions {
  retryOptions: PipelineRetryOptions;
  additionalPolicies: AdditionalPolicyConfig[];
}

/** Client options for any Azure SDK client: our retry settings and the per-try timeout. */
export function baseClientOptions(settings: Pick<Settings, "httpTryTimeoutMs">): SdkClientOptions {
  return { retryOptions: DEFAULT_RETRY_OPTIONS, additionalPolicies: [{ policy: tryTimeoutPolicy(settings.httpTryTimeoutMs), position: "perRetry" }] };
}

/**
 * baseClientOptions, plus with `propagation` the propagation retry for a federated
 * credential's token requests.
 */
export async function sdkClientOptions(options: {
  settings: Pick<Settings, "httpTryTimeoutMs">;
  propagation?: Parameters<typeof propagationRetryStrategy>[0] & { maxRetries?: number };
}): Promise<SdkClientOptions> {
  const { retryOptions, additionalPolicies } = baseClientOptions(options.settings);
  if (options.propagation) {
    const { retryPolicy } = await import("@azure/core-rest-pipeline");
    additionalPolicies.push({
      policy: retryPolicy([propagationRetryStrategy(options.propagation)], { maxRetries: options.propagation.maxRetries ?? PROPAGATION_RETRY.maxRetries }),
      position: "perCall",
    });
  }
  return { retryOptions, additionalPolicies };
}

/** A pipeline and the HTTP client it sends through: what every hand-made client of ours holds. */
export interface HttpPipeline {
  pipeline: import("@azure/core-rest-pipeline").Pipeline;
  httpClient: import("@azure/core-rest-pipeline").HttpClient;
}

/**
 * The one pipeline builder for the clients we make ourselves (the metering API, data-plane REST
 * calls): the SDK's retry policy with our retry settings, the per-try timeout after it, then
 * `policies` (each `perCall`: once per call, outside the retries; `perRetry`: every attempt).
 * A whole call's deadline is the caller's AbortSignal (see `deadline`), never the pipeline's
 * per-request `timeout`: @typespec/ts-http-runtime leaves that timer running when the
 * connection fails, which kept the process alive for the full timeout.
 */
export async function createHttpPipeline(options: {
  settings: Pick<Settings, "httpTryTimeoutMs">;
  retryOptions?: PipelineRetryOptions;
  /** Default: the settings' per-try timeout. */
  tryTimeoutMs?: number;
  userAgentPrefix?: string;
  policies?: AdditionalPolicyConfig[];
  /** Replaces the HTTP client (tests); the policies still apply. */
  httpClient?: import("@azure/core-rest-pipeline").HttpClient;
}): Promise<HttpPipeline> {
  const rp = await import("@azure/core-rest-pipeline");
  const pipeline = rp.createPipelineFromOptions({
    retryOptions: { ...DEFAULT_RETRY_OPTIONS, ...options.retryOptions },
    userAgentOptions: { userAgentPrefix: options.userAgentPrefix ?? "metering-federation" },
  });
  pipeline.addPolicy(tryTimeoutPolicy(options.tryTimeoutMs ?? options.settings.httpTryTimeoutMs), { afterPhase: "Retry" });
  for (const { policy, position } of options.policies ?? []) {
    pipeline.addPolicy(policy, position === "perRetry" ? { afterPhase: "Retry" } : {});
  }
  return { pipeline, httpClient: options.httpClient ?? rp.createDefaultHttpClient() };
}

/**
 * A deadline for one call, retries included: a signal that aborts after `ms` (0: never) or
 * when `outer` does. `clear()` stops the timer; `expired` says whether the deadline (not
 * `outer`) ended the call.
 */
export function deadline(ms: number, outer?: AbortSignal): { signal: AbortSignal; clear(): void; readonly expired: boolean } {
  const controller = new AbortController();
  let expired = false;
  const timer = ms > 0 ? setTimeout(() => { expired = true; controller.abort(); }, ms) : undefined;
  const onOuter = () => controller.abort();
  if (outer?.aborted) controller.abort();
  else outer?.addEventListener("abort", onOuter);
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuter);
    },
    get expired() {
      return expired;
    },
  };
}
