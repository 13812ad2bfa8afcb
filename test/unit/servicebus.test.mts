import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseProperties, parseQueueName, readMessage, receiveMessages, sendMessage, serviceBusError, type ReceivedMessage } from "../../lib/azure/servicebus.mts";
import { AccessDeniedError, DataPlaneError, ResourceNotFoundError, UsageError } from "../../lib/core/errors.mts";
import type { RestRequest, RestResponse } from "../../lib/azure/rest.mts";

function response(status: number, headers: Record<string, string> = {}, body = ""): RestResponse {
  const bytes = new TextEncoder().encode(body);
  return { status, headers, body: bytes, text: () => body, json: () => { try { return JSON.parse(body); } catch { return undefined; } } };
}
/** A fake REST client answering from a script of responses, recording requests. */
function fakeClient(replies: RestResponse[]) {
  const requests: RestRequest[] = [];
  return { requests, send: async (r: RestRequest) => { requests.push(r); return replies.shift() ?? response(500); } };
}
const locked = (n: number) => response(201, {
  brokerproperties: JSON.stringify({ MessageId: `m${n}`, SequenceNumber: n, DeliveryCount: 1, LockToken: `lock-${n}`, LockedUntilUtc: "Thu, 01 Jan 2026 00:01:00 GMT", Label: "L" }),
  location: `https://ns/q/messages/${n}/lock-${n}`, "content-type": "text/plain", state: "\"ok\"", attempt: "2",
}, `body ${n}`);

const parse = suite("parseProperties() / parseQueueName()");
parse("name=value pairs; values may hold '='", () => {
  assert.equal(parseProperties(["tenant=fabrikam", "expr=a=b"]), { tenant: "fabrikam", expr: "a=b" });
});
parse("no name, reserved headers, bad characters and line breaks are usage errors", () => {
  for (const bad of [["=x"], ["novalue"], ["BrokerProperties=x"], ["Authorization=x"], ["x-ms-foo=1"], ["a b=1"], ["k=a\nb"]]) {
    try {
      parseProperties(bad);
      assert.unreachable(bad[0]);
    } catch (e) {
      assert.instance(e, UsageError);
    }
  }
  assert.is(parseQueueName("commands"), "commands");
  for (const bad of ["", "-x", "x-", "a b"]) {
    try {
      parseQueueName(bad);
      assert.unreachable(bad);
    } catch (e) {
      assert.instance(e, UsageError);
    }
  }
});
parse.run();

const wire = suite("sendMessage() / readMessage() / serviceBusError()");
wire("send: user properties as headers (strings quoted), system ones in BrokerProperties", async () => {
  const client = fakeClient([response(201)]);
  await sendMessage({ client, endpoint: "https://ns.servicebus.windows.net:443/", queue: "q", body: "{}", contentType: "application/json", properties: { tenant: "f", n: 2 }, broker: { Label: "x" }, who: "me" });
  const r = client.requests[0];
  assert.is(r.url, "https://ns.servicebus.windows.net:443/q/messages");
  assert.is(r.headers!.tenant, "\"f\"");
  assert.is(r.headers!.n, "2");
  assert.is(r.headers!.BrokerProperties, "{\"Label\":\"x\"}");
});
wire("a received message: broker properties, user properties typed, lock URI", () => {
  const m = readMessage(locked(7));
  assert.is(m.messageId, "m7");
  assert.is(m.sequenceNumber, 7);
  assert.is(m.label, "L");
  assert.equal(m.properties, { state: "ok", attempt: 2 });
  assert.is(m.lockUri, "https://ns/q/messages/7/lock-7");
  assert.is(m.lockedUntilUtc, "2026-01-01T00:01:00.000Z");
  assert.is(new TextDecoder().decode(m.body), "body 7");
});
wire("403 names the role for the operation; 410 is a missing queue; 401 the token", () => {
  const xml = (s: number, d: string) => response(s, { "content-type": "application/xml" }, `<Error><Code>${s}</Code><Detail>${d} TrackingId:abc</Detail></Error>`);
  const send403 = serviceBusError(xml(403, "Unauthorized access. 'Send' claim(s) are required"), { action: "send", queue: "q", namespace: "ns", who: "The UAMI" });
  assert.instance(send403, AccessDeniedError);
  assert.is((send403 as AccessDeniedError).role, "Azure Service Bus Data Sender");
  assert.match(send403.message, /--grant "Azure Service Bus Data Sender"/);
  assert.is((serviceBusError(xml(403, "x"), { action: "receive", queue: "q", namespace: "ns", who: "w" }) as AccessDeniedError).role, "Azure Service Bus Data Receiver");
  assert.instance(serviceBusError(xml(410, "gone"), { action: "send", queue: "q", namespace: "ns", who: "w" }), ResourceNotFoundError);
  const e401 = serviceBusError(xml(401, "InvalidAudience: bad"), { action: "send", queue: "q", namespace: "ns", who: "w" });
  assert.instance(e401, DataPlaneError);
  assert.match(e401.message, /InvalidAudience: bad/);
  assert.not.match(e401.message, /TrackingId/);
});
wire.run();

const receive = suite("receiveMessages()");
receive("each message is completed after the handler returned; stops at max", async () => {
  const client = fakeClient([locked(1), response(200), locked(2), response(200), locked(3)]);
  const seen: string[] = [];
  const outcome = await receiveMessages({ client, endpoint: "https://ns/", queue: "q", max: 2, waitS: 0, who: "w", handle: async (m: ReceivedMessage) => void seen.push(m.messageId) });
  assert.equal(outcome, { completed: 2, abandoned: 0 });
  assert.equal(seen, ["m1", "m2"]);
  assert.equal(client.requests.map((r) => `${r.method} ${r.url}`), [
    "POST https://ns/q/messages/head?timeout=0", "DELETE https://ns/q/messages/1/lock-1",
    "POST https://ns/q/messages/head?timeout=0", "DELETE https://ns/q/messages/2/lock-2",
  ]);
});
receive("a failing handler abandons the message (PUT the lock URI) and the error propagates", async () => {
  const client = fakeClient([locked(1), response(200)]);
  try {
    await receiveMessages({ client, endpoint: "https://ns/", queue: "q", max: 5, waitS: 0, who: "w", handle: async () => { throw new Error("stdout closed"); } });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /stdout closed/);
  }
  assert.equal(client.requests.map((r) => r.method), ["POST", "PUT"]);
});
receive("an empty queue ends the receive (204); the request names its operation for the audit log", async () => {
  const client = fakeClient([response(204)]);
  const outcome = await receiveMessages({ client, endpoint: "https://ns/", queue: "q", max: 3, waitS: 5, who: "w", handle: async () => {} });
  assert.equal(outcome, { completed: 0, abandoned: 0 });
  assert.is(client.requests.length, 1);
  assert.equal(client.requests[0].audit, { operation: "servicebus.receive", responseBody: "digest" });
  assert.match(client.requests[0].url, /timeout=5$/);
});
receive("a lost lock on complete is an error saying the message comes again", async () => {
  const client = fakeClient([locked(1), response(404, {}, "<Error><Code>404</Code><Detail>The lock supplied is invalid.</Detail></Error>")]);
  try {
    await receiveMessages({ client, endpoint: "https://ns/", queue: "q", max: 1, waitS: 0, who: "w", handle: async () => {} });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, DataPlaneError);
    assert.match((e as Error).message, /delivered again/);
  }
});
receive.run();
