// Retry with exponential backoff for the few waits Azure imposes on us: a role assignment or
// a new federated credential takes minutes to reach every replica.

export interface RetryOptions {
  /** Total tries including the first; default 6. */
  attempts?: number;
  /** First wait; doubles per try up to maxDelayMs. Default 2000. */
  delayMs?: number;
  maxDelayMs?: number;
  /** Whether an error is worth another try; default: never. */
  isRetryable?: (error: unknown) => boolean;
  /** Told before each wait (progress for a script); never prints itself. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Replaces setTimeout (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Calls `fn` until it succeeds, the error is not retryable, or attempts run out; rethrows
 * the last error.
 * @example await retry(() => upload(), { isRetryable: (e) => e.statusCode === 403 })
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 6;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let delayMs = options.delayMs ?? 2000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= attempts || !(options.isRetryable?.(error) ?? false)) throw error;
      options.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, maxDelayMs);
    }
  }
}
