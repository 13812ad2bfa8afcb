import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  createHttpHeaders, createPipelineFromOptions, createPipelineRequest, isRestError, type HttpClient, type PipelineRequest,
  type PipelineResponse, type SendRequest,
} from "@azure/core-rest-pipeline";
import {
  aadstsOfBody, baseClientOptions, DEFAULT_RETRY_OPTIONS, PROPAGATION_AADSTS, PROPAGATION_RETRY,
  propagationRetryStrategy, sdkClientOptions, tryTimeoutPolicy,
} from "../../lib/core/http.mts";
import { DEFAULT_TRY_TIMEOUT_MS, readSettings } from "../../lib/core/settings.mts";

type AbortSignalLike = NonNullable<PipelineRequest["abortSignal"]>;

// No network: every `next` and HttpClient here is a fake.
const TOKEN_URL = "https://login.microsoftonline.com/44444444-4444-4444-8444-444444444444/oauth2/v2.0/token";

function respond(request: PipelineRequest, status = 200, bodyAsText = "ok"): PipelineResponse {
  return { request, status, headers: createHttpHeaders(), bodyAsText };
}

/** A `next` that never answers; it rejects as fetch does once the request's signal aborts. */
function hangUntilAborted(seen: AbortSignalLike[] = []): SendRequest {
  return (request) => new Promise((_, reject) => {
    const signal = request.abortSignal!;
    seen.push(signal);
    signal.addEventListener("abort", () => reject(Object.assign(new Error("The operation was aborted."), { name: "AbortError" })));
  });
}

const timeout = suite("tryTimeoutPolicy()");
timeout("is named meteringTryTimeout", () => {
  assert.is(tryTimeoutPolicy(10).name, "meteringTryTimeout");
});
timeout("turns an attempt with no answer within ms into a RestError ETIMEDOUT", async () => {
  const request = createPipelineRequest({ url: "https://api.example/x" });
  const t0 = Date.now();
  try {
    await tryTimeoutPolicy(50).sendRequest(request, hangUntilAborted());
    assert.unreachable();
  } catch (error) {
    assert.ok(isRestError(error), "a RestError");
    assert.is((error as { code?: string }).code, "ETIMEDOUT");
    assert.is((error as Error).message, "no answer within 0.05 s");
    assert.is((error as { request?: unknown }).request, request);
    // Not before its time; how late a busy machine runs the timer does not matter (nothing else ends the attempt).
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 45, `timed out after ${elapsed} ms`);
  }
});
timeout("lets an abort of the caller's own signal pass through as an abort, not ETIMEDOUT", async () => {
  const outer = new AbortController();
  const request = createPipelineRequest({ url: "https://api.example/x", abortSignal: outer.signal });
  setTimeout(() => outer.abort(), 20);
  const t0 = Date.now();
  try {
    await tryTimeoutPolicy(60_000).sendRequest(request, hangUntilAborted());
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).name, "AbortError");
    assert.is.not((error as { code?: string }).code, "ETIMEDOUT");
    assert.ok(Date.now() - t0 < 60_000, "did not wait for the per-try timeout");
  }
  assert.is(request.abortSignal, outer.signal, "caller's signal restored");
});
timeout("when the caller aborts too, the abort wins over ETIMEDOUT", async () => {
  const outer = new AbortController();
  const request = createPipelineRequest({ url: "https://api.example/x", abortSignal: outer.signal });
  const next: SendRequest = (req) => new Promise((_, reject) => req.abortSignal!.addEventListener("abort", () => {
    outer.abort();
    reject(Object.assign(new Error("aborted"), { name: "AbortError" }));
  }));
  try {
    await tryTimeoutPolicy(20).sendRequest(request, next);
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).name, "AbortError");
  }
});
timeout("gives the attempt its own signal and restores the request's signal afterwards", async () => {
  const outer = new AbortController();
  const request = createPipelineRequest({ url: "https://api.example/x", abortSignal: outer.signal });
  const seen: AbortSignal[] = [];
  await tryTimeoutPolicy(20).sendRequest(request, hangUntilAborted(seen)).catch(() => {});
  assert.is.not(seen[0], outer.signal);
  assert.is(seen[0].aborted, true);
  assert.is(request.abortSignal, outer.signal);
  assert.is(outer.signal.aborted, false, "the caller's signal is not aborted by the per-try timeout");
  const bare = createPipelineRequest({ url: "https://api.example/x" });
  await tryTimeoutPolicy(1_000).sendRequest(bare, async (r) => respond(r));
  assert.is(bare.abortSignal, undefined);
});
timeout("passes a fast answer through unchanged and stops its timer", async () => {
  const request = createPipelineRequest({ url: "https://api.example/x" });
  const response = respond(request, 204, "");
  let signal: AbortSignalLike | undefined;
  const got = await tryTimeoutPolicy(30).sendRequest(request, async (r) => ((signal = r.abortSignal), response));
  assert.is(got, response);
  await new Promise((r) => setTimeout(r, 60));
  assert.is(signal!.aborted, false, "the attempt's signal is never aborted once it answered");
});
timeout("passes other errors of the attempt through unchanged", async () => {
  const request = createPipelineRequest({ url: "https://api.example/x" });
  const boom = Object.assign(new Error("ECONNRESET"), { code: "ECONNRESET" });
  try {
    await tryTimeoutPolicy(1_000).sendRequest(request, async () => {
      throw boom;
    });
    assert.unreachable();
  } catch (error) {
    assert.is(error, boom);
  }
});
timeout.run();

const pipeline = suite("tryTimeoutPolicy() in an SDK pipeline");
pipeline("a hung first attempt times out, the SDK retry policy retries it, and the second answers", async () => {
  const p = createPipelineFromOptions({ retryOptions: { maxRetries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 20 } });
  p.addPolicy(tryTimeoutPolicy(50), { afterPhase: "Retry" });
  let calls = 0;
  const httpClient: HttpClient = {
    sendRequest(request) {
      calls++;
      if (calls === 1) return hangUntilAborted()(request);
      return Promise.resolve(respond(request, 200, '{"ok":true}'));
    },
  };
  const t0 = Date.now();
  const response = await p.sendRequest(httpClient, createPipelineRequest({ url: "https://api.example/x", method: "POST" }));
  assert.is(response.status, 200);
  assert.is(response.bodyAsText, '{"ok":true}');
  assert.is(calls, 2);
  assert.ok(Date.now() - t0 >= 50, "the first attempt took the per-try timeout");
});
pipeline("gives up with ETIMEDOUT once the retries are used up", async () => {
  const p = createPipelineFromOptions({ retryOptions: { maxRetries: 1, retryDelayInMs: 5, maxRetryDelayInMs: 10 } });
  p.addPolicy(tryTimeoutPolicy(30), { afterPhase: "Retry" });
  let calls = 0;
  const httpClient: HttpClient = { sendRequest: (request) => (calls++, hangUntilAborted()(request)) };
  try {
    await p.sendRequest(httpClient, createPipelineRequest({ url: "https://api.example/x" }));
    assert.unreachable();
  } catch (error) {
    assert.is((error as { code?: string }).code, "ETIMEDOUT");
    assert.is(calls, 2);
  }
});
pipeline.run();

const aadsts = suite("aadstsOfBody()");
aadsts("reads the first of error_codes in a JSON body", () => {
  assert.is(aadstsOfBody(JSON.stringify({ error: "invalid_client", error_codes: [700213, 50000] })), 700213);
});
aadsts("falls back to an AADSTS number in the text", () => {
  assert.is(aadstsOfBody("AADSTS70021: No matching federated identity record found"), 70021);
  assert.is(aadstsOfBody(JSON.stringify({ error_description: "AADSTS700016: Application not found" })), 700016);
  assert.is(aadstsOfBody(JSON.stringify({ error_codes: ["x"], error_description: "AADSTS700211: issuer" })), 700211);
});
aadsts("is undefined for garbage, empty or missing bodies", () => {
  for (const text of ["garbage", "", null, undefined, "{}", '{"error_codes":[]}', "AADSTS", "[1,2]"]) assert.is(aadstsOfBody(text), undefined, String(text));
});
aadsts.run();

const strategy = suite("propagationRetryStrategy()");
function tokenResponse(status: number, body: unknown, url = TOKEN_URL): PipelineResponse {
  return respond(createPipelineRequest({ url, method: "POST" }), status, typeof body === "string" ? body : JSON.stringify(body));
}
function withRandom<T>(value: number, fn: () => T): T {
  const original = Math.random;
  Math.random = () => value;
  try {
    return fn();
  } finally {
    Math.random = original;
  }
}
strategy("retries 400 and 401 of a token endpoint with a propagation AADSTS code", () => {
  const s = propagationRetryStrategy({ retryDelayInMs: 100, maxRetryDelayInMs: 1_000 });
  for (const code of PROPAGATION_AADSTS) {
    for (const status of [400, 401]) {
      const r = s.retry({ retryCount: 0, response: tokenResponse(status, { error_codes: [code] }) });
      assert.is(r.skipStrategy, undefined, `${status} ${code}`);
      assert.ok(typeof r.retryAfterInMs === "number");
    }
  }
  const v1 = s.retry({ retryCount: 0, response: tokenResponse(400, "AADSTS70021: x", "https://login.microsoftonline.com/t/oauth2/token") });
  assert.ok(typeof v1.retryAfterInMs === "number", "v1 token endpoint");
});
strategy("skips other statuses, other URLs, other codes and network errors", () => {
  const s = propagationRetryStrategy();
  const body = { error_codes: [70021] };
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(500, body) }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(403, body) }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(200, body) }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(400, body, "https://management.azure.com/subscriptions") }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(400, body, "https://login.microsoftonline.com/t/oauth2/v2.0/tokenizer") }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(400, { error_codes: [50034] }) }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, response: tokenResponse(400, "no code here") }), { skipStrategy: true });
  assert.equal(s.retry({ retryCount: 0, responseError: Object.assign(new Error("ECONNRESET"), { name: "RestError" }) as never }), { skipStrategy: true });
});
strategy("waits between half and all of base * 2^retryCount, capped at the maximum", () => {
  const s = propagationRetryStrategy({ retryDelayInMs: 100, maxRetryDelayInMs: 1_000 });
  const at = (retryCount: number, random: number) => withRandom(random, () => s.retry({ retryCount, response: tokenResponse(400, { error_codes: [70021] }) }).retryAfterInMs);
  assert.equal([0, 1, 2, 3, 4, 10].map((n) => at(n, 0)), [50, 100, 200, 400, 500, 500]);
  assert.equal([0, 1, 2, 3, 4, 10].map((n) => at(n, 0.5)), [75, 150, 300, 600, 750, 750]);
  for (let i = 0; i < 200; i++) {
    const n = i % 8;
    const clamped = Math.min(1_000, 100 * 2 ** n);
    const d = s.retry({ retryCount: n, response: tokenResponse(400, { error_codes: [700213] }) }).retryAfterInMs!;
    assert.ok(d >= clamped / 2 && d <= clamped, `retry ${n}: ${d} outside [${clamped / 2}, ${clamped}]`);
  }
});
strategy("uses PROPAGATION_RETRY by default", () => {
  const d = withRandom(0, () => propagationRetryStrategy().retry({ retryCount: 20, response: tokenResponse(400, { error_codes: [70021] }) }).retryAfterInMs);
  assert.is(d, PROPAGATION_RETRY.maxRetryDelayInMs / 2);
});
strategy("tells onRetry the code, the wait and the retry count before each wait", () => {
  const told: unknown[] = [];
  const s = propagationRetryStrategy({ retryDelayInMs: 10, maxRetryDelayInMs: 100, onRetry: (info) => told.push(info) });
  const r = withRandom(0, () => s.retry({ retryCount: 2, response: tokenResponse(401, { error_codes: [700211] }) }));
  s.retry({ retryCount: 0, response: tokenResponse(500, {}) });
  assert.equal(told, [{ aadsts: 700211, retryAfterInMs: 20, retryCount: 2 }]);
  assert.is(r.retryAfterInMs, 20);
});
strategy.run();

const env = suite("readSettings().httpTryTimeoutMs");
env("reads METERING_HTTP_TRY_TIMEOUT_MS when it is a positive number, else 30 s", () => {
  assert.is(DEFAULT_TRY_TIMEOUT_MS, 30_000);
  assert.is(readSettings({ METERING_HTTP_TRY_TIMEOUT_MS: "1500" }).httpTryTimeoutMs, 1500);
  assert.is(readSettings({ METERING_HTTP_TRY_TIMEOUT_MS: "0.5" }).httpTryTimeoutMs, 0.5);
  for (const v of [undefined, "", "abc", "0", "-5", "Infinity"]) assert.is(readSettings({ METERING_HTTP_TRY_TIMEOUT_MS: v }).httpTryTimeoutMs, 30_000, String(v));
});
env.run();

const base = suite("baseClientOptions()");
base("gives our retry options and one per-retry timeout policy", () => {
  const o = baseClientOptions(readSettings({}));
  assert.equal(o.retryOptions, DEFAULT_RETRY_OPTIONS);
  assert.equal(DEFAULT_RETRY_OPTIONS, { maxRetries: 4, retryDelayInMs: 800, maxRetryDelayInMs: 15_000 });
  assert.is(o.additionalPolicies.length, 1);
  assert.is(o.additionalPolicies[0].position, "perRetry");
  assert.is(o.additionalPolicies[0].policy.name, "meteringTryTimeout");
});
base("the policy's timeout comes from the environment", async () => {
  const { policy } = baseClientOptions(readSettings({ METERING_HTTP_TRY_TIMEOUT_MS: "25" })).additionalPolicies[0];
  const t0 = Date.now();
  try {
    await policy.sendRequest(createPipelineRequest({ url: "https://api.example/x" }), hangUntilAborted());
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, "no answer within 0.025 s");
    assert.ok(Date.now() - t0 < DEFAULT_TRY_TIMEOUT_MS, "not the default timeout");
  }
});
base.run();

const sdk = suite("sdkClientOptions()");
sdk("without propagation is baseClientOptions", async () => {
  const o = await sdkClientOptions({ settings: readSettings({}) });
  assert.equal(o.retryOptions, DEFAULT_RETRY_OPTIONS);
  assert.equal(o.additionalPolicies.map((p) => [p.policy.name, p.position]), [["meteringTryTimeout", "perRetry"]]);
});
sdk("with propagation adds a per-call retry policy that retries propagation errors of a token request", async () => {
  const told: number[] = [];
  const o = await sdkClientOptions({ settings: readSettings({}), propagation: { retryDelayInMs: 1, maxRetryDelayInMs: 2, maxRetries: 3, onRetry: (i) => told.push(i.aadsts) } });
  assert.equal(o.additionalPolicies.map((p) => p.position), ["perRetry", "perCall"]);
  const retry = o.additionalPolicies[1].policy;
  let calls = 0;
  const next: SendRequest = async (request) => {
    calls++;
    return calls < 3 ? respond(request, 400, JSON.stringify({ error_codes: [700213] })) : respond(request, 200, '{"access_token":"x"}');
  };
  const response = await retry.sendRequest(createPipelineRequest({ url: TOKEN_URL, method: "POST" }), next);
  assert.is(response.status, 200);
  assert.is(calls, 3);
  assert.equal(told, [700213, 700213]);
});
sdk("the propagation retry gives up after maxRetries and returns the last answer", async () => {
  const o = await sdkClientOptions({ settings: readSettings({}), propagation: { retryDelayInMs: 1, maxRetryDelayInMs: 2, maxRetries: 2 } });
  let calls = 0;
  const response = await o.additionalPolicies[1].policy.sendRequest(createPipelineRequest({ url: TOKEN_URL }), async (r) => (calls++, respond(r, 400, "AADSTS70021: not yet")));
  assert.is(response.status, 400);
  assert.is(calls, 3);
});
sdk.run();
