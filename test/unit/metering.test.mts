import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createMeteringClient, describeUsageRequest, parseBatchResponse, parseUsageEventResponse, type MeteringClientOptions,
  type UsageEvent,
} from "../../lib/metering/api.mts";
import { MeteringApiError } from "../../lib/core/errors.mts";
import { DEFAULT_TRY_TIMEOUT_MS, readSettings } from "../../lib/core/settings.mts";

const billing = {
  resourceId: "55555555-5555-4555-8555-555555555555",
  resourceUri: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Solutions/applications/app1",
};
// As planSubmission builds it from a connected customer and a row (test/unit/submission.test.mts).
const event: UsageEvent = {
  resourceId: billing.resourceId, resourceUri: billing.resourceUri, planId: "silver", dimension: "dim1", quantity: 5,
  effectiveStartTime: "2024-05-01T12:00:00Z",
};

const describe = suite("describeUsageRequest()");
describe("POSTs to /api/usageEvent with api-version, id headers and no token", () => {
  const r = describeUsageRequest({ event, baseUrl: "https://m.example/", requestId: "r", correlationId: "c" });
  assert.equal(r, {
    method: "POST",
    url: "https://m.example/api/usageEvent?api-version=2018-08-31",
    headers: { "content-type": "application/json", "x-ms-requestid": "r", "x-ms-correlationid": "c" },
    body: event,
  });
});
describe("generates GUID ids and uses the batch route for events[]", () => {
  const r = describeUsageRequest({ events: [event], baseUrl: "https://m.example" });
  assert.is(r.url, "https://m.example/api/batchUsageEvent?api-version=2018-08-31");
  assert.equal(r.body, { request: [event] });
  assert.match(r.headers["x-ms-requestid"], /^[0-9a-f-]{36}$/);
  assert.is.not(r.headers["x-ms-requestid"], r.headers["x-ms-correlationid"]);
});
describe("readSettings().meteringApiBaseUrl reads METERING_API_BASE_URL", () => {
  assert.is(readSettings({}).meteringApiBaseUrl, "https://marketplaceapi.microsoft.com");
  assert.is(readSettings({ METERING_API_BASE_URL: "https://127.0.0.1:1234/" }).meteringApiBaseUrl, "https://127.0.0.1:1234");
});
describe.run();

const ACCEPTED = {
  usageEventId: "e1", status: "Accepted", messageTime: "2024-05-01T13:45:11.1234567Z", resourceId: billing.resourceId,
  resourceUri: billing.resourceUri, quantity: 5, dimension: "dim1", effectiveStartTime: "2024-05-01T12:00:00Z", planId: "silver",
};
const duplicateBody = (quantity: number) => ({
  additionalInfo: { acceptedMessage: { ...ACCEPTED, usageEventId: "orig", status: "Duplicate", quantity } },
  message: "This usage event already exist.",
  code: "Conflict",
});
const BAD = {
  message: "One or more errors have occurred.", target: "usageEventRequest", code: "BadArgument",
  details: [{ message: "The payload dimension is invalid.", target: "dimension", code: "BadArgument" }],
};

const parse = suite("parseUsageEventResponse()");
parse("200 is Accepted with the API's record", () => {
  const o = parseUsageEventResponse({ httpStatus: 200, bodyText: JSON.stringify(ACCEPTED), event, requestId: "r", correlationId: "c" });
  assert.is(o.status, "Accepted");
  assert.is(o.ok, true);
  assert.equal(o.accepted, ACCEPTED);
  assert.is(o.requestId, "r");
  assert.is(o.correlationId, "c");
});
parse("409 is Duplicate carrying the original event; ok when the quantity matches", () => {
  const same = parseUsageEventResponse({ httpStatus: 409, bodyText: JSON.stringify(duplicateBody(5)), event });
  assert.is(same.status, "Duplicate");
  assert.is(same.ok, true);
  assert.is(same.quantityMatches, true);
  assert.is(same.original!.usageEventId, "orig");
  assert.is(same.error!.code, "Conflict");
  const other = parseUsageEventResponse({ httpStatus: 409, bodyText: JSON.stringify(duplicateBody(9)), event });
  assert.is(other.ok, false);
  assert.is(other.quantityMatches, false);
  assert.is(other.original!.quantity, 9);
});
parse("409 without a readable original is a failed Duplicate", () => {
  const o = parseUsageEventResponse({ httpStatus: 409, bodyText: "", event });
  assert.is(o.status, "Duplicate");
  assert.is(o.ok, false);
  assert.is(o.original, undefined);
});
parse("400 is BadArgument with code, message and details", () => {
  const o = parseUsageEventResponse({ httpStatus: 400, bodyText: JSON.stringify(BAD), event });
  assert.is(o.status, "BadArgument");
  assert.is(o.ok, false);
  assert.equal(o.error, { code: "BadArgument", message: "One or more errors have occurred.", target: "usageEventRequest", details: BAD.details });
});
parse("403 with an empty body is Forbidden", () => {
  const o = parseUsageEventResponse({ httpStatus: 403, bodyText: "", event });
  assert.is(o.status, "Forbidden");
  assert.is(o.body, null);
});
parse("anything else is Error, keeping a non-JSON body as text", () => {
  const o = parseUsageEventResponse({ httpStatus: 502, bodyText: "<html>bad gateway</html>", event });
  assert.is(o.status, "Error");
  assert.is(o.ok, false);
  assert.is(o.body, "<html>bad gateway</html>");
});
parse.run();

const batch = suite("parseBatchResponse()");
batch("maps each item in request order, Error and UsageEventError as failures", () => {
  const events = [event, { ...event, dimension: "dim2" }, { ...event, dimension: "bad" }, { ...event, dimension: "x" }, { ...event, dimension: "y" }];
  const body = {
    result: [
      ACCEPTED,
      { status: "Duplicate", error: duplicateBody(5), dimension: "dim2" },
      { status: "InvalidDimension", error: BAD, dimension: "bad" },
      { status: "UsageEventError", dimension: "x" },
      { status: "SomethingNew", dimension: "y" },
    ],
    count: 5,
  };
  const o = parseBatchResponse({ httpStatus: 200, bodyText: JSON.stringify(body), events });
  assert.equal(o.results.map((r) => [r.status, r.ok]), [
    ["Accepted", true], ["Duplicate", true], ["InvalidDimension", false], ["UsageEventError", false], ["SomethingNew", false],
  ]);
  assert.is(o.results[1].original!.usageEventId, "orig");
  assert.is(o.results[2].error!.details![0].target, "dimension");
  assert.is(o.results[2].event.dimension, "bad");
});
batch("a missing item is a failure", () => {
  const o = parseBatchResponse({ httpStatus: 200, bodyText: JSON.stringify({ result: [], count: 0 }), events: [event] });
  assert.is(o.results[0].status, "Error");
});
batch("a refused batch has no results and the error", () => {
  const o = parseBatchResponse({ httpStatus: 400, bodyText: JSON.stringify({ ...BAD, message: "The batch contained more than 25 usage events." }), events: [event] });
  assert.equal(o.results, []);
  assert.is(o.error!.message, "The batch contained more than 25 usage events.");
});
batch.run();

/** A metering API stand-in on 127.0.0.1 that answers from a script of responses. */
async function withServer(
  answers: ((req: IncomingMessage, body: string, res: ServerResponse) => void)[],
  fn: (baseUrl: string, seen: { method?: string; url?: string; headers: IncomingMessage["headers"]; body: string }[]) => Promise<void>,
) {
  const seen: { method?: string; url?: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const answer = answers[Math.min(seen.length - 1, answers.length - 1)];
      answer(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen);
  } finally {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => (_req: IncomingMessage, _b: string, res: ServerResponse) => {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
  res.end(body === undefined ? "" : JSON.stringify(body));
};

/** A client as the publisher context makes one (createMeteringClient), for the test server. */
const clientFor = (baseUrl: string, options: Omit<MeteringClientOptions, "settings"> = {}) =>
  createMeteringClient({ settings: readSettings({ METERING_API_BASE_URL: baseUrl }), ...options });

const submit = suite("MeteringClient.submitUsageEvent()");
submit("sends the event with bearer token and id headers, returns Accepted with the server's ids", async () => {
  await withServer([json(200, ACCEPTED, { "x-ms-requestid": "srv-r", "x-ms-correlationid": "srv-c" })], async (baseUrl, seen) => {
    const o = await (await clientFor(baseUrl, { allowInsecureConnection: true })).submitUsageEvent({ event, accessToken: "tok", requestId: "my-r", correlationId: "my-c" });
    assert.is(o.status, "Accepted");
    assert.is(o.requestId, "srv-r");
    assert.is(o.correlationId, "srv-c");
    assert.is(seen.length, 1);
    assert.is(seen[0].method, "POST");
    assert.is(seen[0].url, "/api/usageEvent?api-version=2018-08-31");
    assert.is(seen[0].headers.authorization, "Bearer tok");
    assert.is(seen[0].headers["content-type"], "application/json");
    assert.is(seen[0].headers["x-ms-requestid"], "my-r");
    assert.is(seen[0].headers["x-ms-correlationid"], "my-c");
    assert.equal(JSON.parse(seen[0].body), event);
  });
});
submit("falls back to the sent ids when the server echoes none", async () => {
  await withServer([json(409, duplicateBody(5))], async (baseUrl) => {
    const o = await (await clientFor(baseUrl, { allowInsecureConnection: true })).submitUsageEvent({ event, accessToken: "tok", requestId: "my-r", correlationId: "my-c" });
    assert.is(o.status, "Duplicate");
    assert.is(o.requestId, "my-r");
    assert.is(o.correlationId, "my-c");
  });
});
submit("retries 503 and 429 (Retry-After) and then succeeds", async () => {
  await withServer([json(503, {}), json(429, {}, { "retry-after": "0" }), json(200, ACCEPTED)], async (baseUrl, seen) => {
    const o = await (await clientFor(baseUrl, { allowInsecureConnection: true, retryOptions: { retryDelayInMs: 5, maxRetryDelayInMs: 10 } })).submitUsageEvent({ event, accessToken: "tok" });
    assert.is(o.status, "Accepted");
    assert.is(seen.length, 3);
  });
});
submit("does not retry a 400", async () => {
  await withServer([json(400, BAD)], async (baseUrl, seen) => {
    const o = await (await clientFor(baseUrl, { allowInsecureConnection: true, retryOptions: { retryDelayInMs: 5 } })).submitUsageEvent({ event, accessToken: "tok" });
    assert.is(o.status, "BadArgument");
    assert.is(seen.length, 1);
  });
});
submit("a refused connection is a MeteringApiError after retries", async () => {
  let baseUrl = "";
  await withServer([json(200, {})], async (url) => {
    baseUrl = url;
  });
  try {
    await (await clientFor(baseUrl, { allowInsecureConnection: true, retryOptions: { maxRetries: 1, retryDelayInMs: 5, maxRetryDelayInMs: 5 } })).submitUsageEvent({ event, accessToken: "tok" });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, MeteringApiError);
    assert.is((error as MeteringApiError).code, "ERR_METERING_API");
    assert.match((error as Error).message, /^Cannot reach the metering API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  }
});
submit("gives up at the deadline when the server never answers", async () => {
  await withServer([() => {}], async (baseUrl) => {
    const started = Date.now();
    try {
      await (await clientFor(baseUrl, { allowInsecureConnection: true, deadlineMs: 200 })).submitUsageEvent({ event, accessToken: "tok" });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, MeteringApiError);
      assert.match((error as Error).message, /: no answer within 0\.2 s, retries included \(resending later is safe/);
      assert.ok(Date.now() - started < DEFAULT_TRY_TIMEOUT_MS, "not after an attempt's own timeout");
    }
  });
});
submit("refuses plain http unless allowed, sending nothing", async () => {
  await withServer([json(200, ACCEPTED)], async (baseUrl, seen) => {
    try {
      await (await clientFor(baseUrl)).submitUsageEvent({ event, accessToken: "tok" });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, MeteringApiError);
      assert.match((error as Error).message, /allowInsecureConnection/);
    }
    assert.is(seen.length, 0);
  });
});
submit.run();

const submitBatch = suite("MeteringClient.submitUsageBatch()");
submitBatch("posts {request: events} to the batch route", async () => {
  await withServer([json(200, { result: [ACCEPTED], count: 1 })], async (baseUrl, seen) => {
    const o = await (await clientFor(baseUrl, { allowInsecureConnection: true })).submitUsageBatch({ events: [event], accessToken: "tok" });
    assert.is(seen[0].url, "/api/batchUsageEvent?api-version=2018-08-31");
    assert.equal(JSON.parse(seen[0].body), { request: [event] });
    assert.is(o.results[0].status, "Accepted");
  });
});
submitBatch("refuses 0 or more than 25 events before sending", async () => {
  const client = await clientFor("http://127.0.0.1:9");
  for (const events of [[], Array(26).fill(event)]) {
    try {
      await client.submitUsageBatch({ events, accessToken: "tok" });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RangeError);
    }
  }
});
submitBatch.run();
