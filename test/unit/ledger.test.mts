import { suite } from "uvu";
import * as assert from "uvu/assert";
import { eventsOfIntent, Ledger, resultOf, type EventResult } from "../../lib/metering/ledger.mts";
import { keyResource, usageKey } from "../../lib/metering/time.mts";
import { parseBatchResponse, parseUsageEventResponse, type UsageEvent, type UsageOutcome } from "../../lib/metering/api.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";
import { A, B, C, HOUR_MS, hoursAgo, intentRecord, NOW, outcomeRecord, ref, usageEvent } from "./_usage-support.mts";

const ev = usageEvent(A, "cpu", 5, hoursAgo(1));
const keyOf = (e: UsageEvent) => usageKey(e);

const single = (httpStatus: number, body?: unknown, event = ev): UsageOutcome =>
  parseUsageEventResponse({ httpStatus, bodyText: body === undefined ? "" : JSON.stringify(body), event });
const item = (status: string, extra: Record<string, unknown> = {}, event = ev): UsageOutcome =>
  parseBatchResponse({ httpStatus: 200, bodyText: JSON.stringify({ result: [{ status, ...extra }] }), events: [event] }).results[0];
const duplicateBody = (quantity?: number) => ({ code: "Conflict", additionalInfo: { acceptedMessage: quantity === undefined ? { status: "Duplicate" } : { quantity, usageEventId: "u0" } } });

const result = suite("resultOf()");
result("Accepted is accepted and bills our quantity", () => {
  assert.equal(resultOf(single(200, { status: "Accepted", usageEventId: "u1", quantity: 5 })), { key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 });
  assert.equal(resultOf(item("Accepted")), { key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 });
});
result("Duplicate is accepted and bills the original's quantity, same or different", () => {
  assert.equal(resultOf(single(409, duplicateBody(5))), { key: keyOf(ev), status: "Duplicate", state: "accepted", billedQuantity: 5 });
  assert.equal(resultOf(single(409, duplicateBody(7))), { key: keyOf(ev), status: "Duplicate", state: "accepted", billedQuantity: 7 });
  assert.equal(resultOf(item("Duplicate", { error: duplicateBody(3) })), { key: keyOf(ev), status: "Duplicate", state: "accepted", billedQuantity: 3 });
});
result("Duplicate without the original's quantity is accepted with no billed quantity", () => {
  const r = resultOf(single(409, duplicateBody()));
  assert.equal(r, { key: keyOf(ev), status: "Duplicate", state: "accepted" });
  assert.not.ok("billedQuantity" in r);
  assert.equal(resultOf(single(409)), { key: keyOf(ev), status: "Duplicate", state: "accepted" });
});
result("every final refusal is failed, under its own status", () => {
  for (const status of ["Expired", "ResourceNotFound", "ResourceNotAuthorized", "ResourceNotActive", "InvalidDimension", "InvalidQuantity"]) {
    assert.equal(resultOf(item(status)), { key: keyOf(ev), status, state: "failed" }, status);
  }
  assert.equal(resultOf(single(400, { code: "BadArgument", message: "m" })), { key: keyOf(ev), status: "BadArgument", state: "failed" });
  assert.equal(resultOf(single(403)), { key: keyOf(ev), status: "Forbidden", state: "failed" });
  assert.equal(resultOf(single(401)), { key: keyOf(ev), status: "Forbidden", state: "failed" });
});
result("HTTP 5xx, 429 and 408 stay open as 'HTTP n'", () => {
  for (const status of [500, 503, 429, 408]) {
    assert.equal(resultOf(single(status, { code: "x" })), { key: keyOf(ev), status: `HTTP ${status}`, state: "open" }, String(status));
  }
});
result("other HTTP errors such as 404 fail for good as 'HTTP n'", () => {
  assert.equal(resultOf(single(404, { code: "NotFound" })), { key: keyOf(ev), status: "HTTP 404", state: "failed" });
  assert.equal(resultOf(single(413)), { key: keyOf(ev), status: "HTTP 413", state: "failed" });
});
result("a batch item 'Error' (HTTP 200) is open: its fate is unknown, so it is sent again", () => {
  assert.equal(resultOf(item("Error")), { key: keyOf(ev), status: "Error", state: "open" });
  assert.equal(resultOf(item("UsageEventError")), { key: keyOf(ev), status: "UsageEventError", state: "open" });
});
result("an unknown batch item status stays open under that status", () => {
  assert.equal(resultOf(item("SomethingNew")), { key: keyOf(ev), status: "SomethingNew", state: "open" });
});
result.run();

const intents = suite("eventsOfIntent()");
intents("reads the event of a single-event body", () => {
  assert.equal(eventsOfIntent(intentRecord("i", ref(A), [ev])), [ev]);
});
intents("reads the events of a batch body in order, dropping junk", () => {
  const e2 = usageEvent(A, "mem", 2);
  const record = intentRecord("i", ref(A), [ev, e2], { batch: true });
  (record.request!.body as { request: unknown[] }).request.splice(1, 0, null, "x", 7, { ...ev, quantity: "5" }, { ...ev, resourceId: undefined }, { dimension: "d" });
  assert.equal(eventsOfIntent(record), [ev, e2]);
});
intents("drops an event whose effectiveStartTime is not a time, so one bad line cannot stop later runs", () => {
  const record = intentRecord("i", ref(A), [ev, { ...ev, effectiveStartTime: "garbage" }], { batch: true });
  assert.equal(eventsOfIntent(record), [ev]);
  const l = new Ledger();
  l.add(intentRecord("j", ref(A), [{ ...ev, effectiveStartTime: "garbage" }]));
  assert.is(l.entries.size, 0);
});
intents("is empty without a request, a body, or with a non-object body", () => {
  const base: AuditRecord = { time: "t", operation: "usageEvent.intent", id: "i" };
  assert.equal(eventsOfIntent(base), []);
  assert.equal(eventsOfIntent({ ...base, request: { method: "POST", url: "u", headers: {}, body: null } }), []);
  assert.equal(eventsOfIntent({ ...base, request: { method: "POST", url: "u", headers: {}, body: "text" } }), []);
  assert.equal(eventsOfIntent({ ...base, request: { method: "POST", url: "u", headers: {}, body: { request: "nope" } } }), []);
});
intents.run();

const ledger = suite("Ledger");
const fold = (records: AuditRecord[], options?: { sinceMs?: number; unresolvedSinceMs?: number }) => {
  const l = new Ledger(options);
  for (const r of records) l.add(r);
  return l;
};
ledger("an intent without an outcome is open (Pending) with the event as sent", () => {
  const l = fold([intentRecord("i1", ref(A), [ev], { time: "2026-11-23T12:00:00.000Z" })]);
  assert.equal(l.get(keyOf(ev)), { key: keyOf(ev), state: "open", event: ev, customer: ref(A), status: "Pending", time: "2026-11-23T12:00:00.000Z", sentAt: "2026-11-23T12:00:00.000Z", resent: false });
  assert.equal(l.unresolved().map((e) => e.key), [keyOf(ev)]);
});
ledger("an outcome with an events array settles each event of its intent", () => {
  const e2 = usageEvent(A, "mem", 2);
  const e3 = usageEvent(A, "disk", 3);
  const l = fold([
    intentRecord("b1", ref(A), [ev, e2, e3]),
    outcomeRecord("b1", ref(A), [
      { key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 },
      { key: keyOf(e2), status: "Expired", state: "failed" },
      { key: keyOf(e3), status: "HTTP 503", state: "open" },
    ], { time: "T2" }),
  ]);
  assert.equal(l.get(keyOf(ev)), { key: keyOf(ev), state: "accepted", event: ev, customer: ref(A), status: "Accepted", billedQuantity: 5, time: "T2" });
  assert.is(l.get(keyOf(e2))?.state, "failed");
  assert.is(l.get(keyOf(e2))?.status, "Expired");
  assert.is(l.get(keyOf(e3))?.state, "open");
  assert.equal(l.unresolved().map((e) => e.key), [keyOf(e3)]);
});
ledger("an event its outcome does not mention stays open as Unconfirmed", () => {
  const e2 = usageEvent(A, "mem", 2);
  const l = fold([intentRecord("b1", ref(A), [ev, e2]), outcomeRecord("b1", ref(A), [{ key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 }])]);
  assert.is(l.get(keyOf(ev))?.state, "accepted");
  assert.equal([l.get(keyOf(e2))?.state, l.get(keyOf(e2))?.status], ["open", "Unconfirmed"]);
});
ledger("accepted is sticky: a later intent, failure or unconfirmed answer does not downgrade it", () => {
  const accepted: EventResult = { key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 };
  const l = fold([
    intentRecord("i1", ref(A), [ev]), outcomeRecord("i1", ref(A), [accepted], { time: "T1" }),
    intentRecord("i2", ref(A), [{ ...ev, quantity: 9 }]),
  ]);
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(ev))?.billedQuantity, l.get(keyOf(ev))?.time], ["accepted", 5, "T1"]);
  assert.equal(l.unresolved(), []);
  l.add(outcomeRecord("i2", ref(A), [{ key: keyOf(ev), status: "InvalidQuantity", state: "failed" }]));
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(ev))?.status], ["accepted", "Accepted"]);
  l.add(intentRecord("i3", ref(A), [ev]));
  l.add(outcomeRecord("i3", ref(A), [{ key: keyOf(ev), status: "Unconfirmed", state: "open" }]));
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(ev))?.billedQuantity], ["accepted", 5]);
});
ledger("a later Duplicate without a quantity keeps the billed quantity already known", () => {
  const l = fold([
    intentRecord("i1", ref(A), [ev]), outcomeRecord("i1", ref(A), [{ key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 }]),
    intentRecord("i2", ref(A), [ev]), outcomeRecord("i2", ref(A), [{ key: keyOf(ev), status: "Duplicate", state: "accepted" }]),
  ]);
  assert.equal([l.get(keyOf(ev))?.status, l.get(keyOf(ev))?.billedQuantity], ["Accepted", 5]);
});
ledger("a failed event sent again and accepted becomes accepted", () => {
  const l = fold([
    intentRecord("i1", ref(A), [ev]), outcomeRecord("i1", ref(A), [{ key: keyOf(ev), status: "HTTP 404", state: "failed" }]),
    intentRecord("i2", ref(A), [ev]),
  ]);
  assert.is(l.get(keyOf(ev))?.state, "open");
  l.add(outcomeRecord("i2", ref(A), [{ key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 5 }]));
  assert.is(l.get(keyOf(ev))?.state, "accepted");
});
ledger("understands a session-1 outcome record without events: Accepted", () => {
  const l = fold([
    intentRecord("s1", ref(A), [ev]),
    { time: "T", operation: "usageEvent", id: "s1", customer: ref(A), outcome: "Accepted", response: { status: 200, body: { status: "Accepted", quantity: 5 } } },
  ]);
  assert.equal(l.get(keyOf(ev)), { key: keyOf(ev), state: "accepted", event: ev, customer: ref(A), status: "Accepted", billedQuantity: 5, time: "T" });
});
ledger("understands a session-1 Duplicate, billing the quantity of its acceptedMessage", () => {
  const l = fold([
    intentRecord("s1", ref(A), [ev]),
    { time: "T", operation: "usageEvent", id: "s1", customer: ref(A), outcome: "Duplicate", response: { status: 409, body: duplicateBody(8) } },
    intentRecord("s2", ref(B), [usageEvent(B, "cpu", 1)]),
    { time: "T", operation: "usageEvent", id: "s2", customer: ref(B), outcome: "Duplicate", response: { status: 409, body: null } },
  ]);
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(ev))?.status, l.get(keyOf(ev))?.billedQuantity], ["accepted", "Duplicate", 8]);
  const b = l.get(keyOf(usageEvent(B, "cpu", 1)))!;
  assert.equal([b.state, b.billedQuantity], ["accepted", undefined]);
});
ledger("session-1 records: a 503 stays open, a 404 or a final status fails, a thrown send is Unconfirmed", () => {
  const e = (d: string) => usageEvent(A, d, 1);
  const l = fold([
    intentRecord("s1", ref(A), [e("a")]),
    { time: "T", operation: "usageEvent", id: "s1", customer: ref(A), outcome: "Error", response: { status: 503, body: null } },
    intentRecord("s2", ref(A), [e("b")]),
    { time: "T", operation: "usageEvent", id: "s2", customer: ref(A), outcome: "Error", response: { status: 404, body: null } },
    intentRecord("s3", ref(A), [e("c")]),
    { time: "T", operation: "usageEvent", id: "s3", customer: ref(A), outcome: "Forbidden", response: { status: 403, body: null } },
    intentRecord("s4", ref(A), [e("d")]),
    { time: "T", operation: "usageEvent", id: "s4", customer: ref(A), error: { message: "ECONNRESET" } },
  ]);
  const s = (d: string) => [l.get(keyOf(e(d)))?.state, l.get(keyOf(e(d)))?.status];
  assert.equal(s("a"), ["open", "Error"]);
  assert.equal(s("b"), ["failed", "Error"]);
  assert.equal(s("c"), ["failed", "Forbidden"]);
  assert.equal(s("d"), ["open", "Unconfirmed"]);
  assert.equal(l.unresolved().map((x) => x.event.dimension).sort(), ["a", "d"]);
});
ledger("sinceMs drops events whose hour starts before it", () => {
  const old = usageEvent(A, "cpu", 1, hoursAgo(30));
  const recent = usageEvent(A, "cpu", 1, hoursAgo(2));
  const l = fold([intentRecord("b", ref(A), [old, recent])], { sinceMs: Date.parse(hoursAgo(29)) });
  assert.equal([...l.entries.keys()], [keyOf(recent)]);
  const l2 = fold([intentRecord("o", ref(A), [old]), outcomeRecord("o", ref(A), [{ key: keyOf(old), status: "Accepted", state: "accepted" }])], { sinceMs: NOW - 2 * 24 * HOUR_MS + HOUR_MS * 20 });
  assert.is(l2.entries.size, 0);
  const l3 = fold([intentRecord("e", ref(A), [old])], { sinceMs: Date.parse(hoursAgo(30)) });
  assert.is(l3.entries.size, 1, "an hour starting exactly at sinceMs is kept");
});
ledger("ignores unknown operations, records without id or customer, and outcomes without an intent", () => {
  const l = fold([
    { ...intentRecord("x", ref(A), [ev]), operation: "somethingElse.intent" },
    { ...intentRecord("x", ref(A), [ev]), operation: "tokenRequest" },
    { ...intentRecord("x", ref(A), [ev]), id: undefined },
    { ...intentRecord("x", ref(A), [ev]), id: 42 as unknown as string },
    { ...intentRecord("x", ref(A), [ev]), customer: undefined },
    outcomeRecord("never-intended", ref(A), [{ key: keyOf(ev), status: "Accepted", state: "accepted" }]),
  ]);
  assert.is(l.entries.size, 0);
});
ledger("an outcome is matched to its intent by id only once", () => {
  const l = fold([
    intentRecord("i1", ref(A), [ev]),
    outcomeRecord("i1", ref(A), [{ key: keyOf(ev), status: "HTTP 500", state: "open" }]),
    outcomeRecord("i1", ref(A), [{ key: keyOf(ev), status: "Accepted", state: "accepted" }]),
  ]);
  assert.is(l.get(keyOf(ev))?.state, "open");
});
ledger("a resend of an open event refused for good is unknown, never failed: the first send may be billed", () => {
  const l = fold([
    intentRecord("i1", ref(A), [ev], { time: "T1" }),
    intentRecord("i2", ref(A), [ev], { time: "T2" }),
    outcomeRecord("i2", ref(A), [{ key: keyOf(ev), status: "Expired", state: "failed" }], { time: "T3" }),
  ]);
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(ev))?.status, l.get(keyOf(ev))?.sentAt], ["unknown", "Expired", "T1"]);
  assert.equal(l.unresolved().map((e) => e.key), [keyOf(ev)]);
});
ledger("a first send refused for good is failed; a batch item Error then a refused resend is unknown", () => {
  const e2 = usageEvent(A, "mem", 2);
  const l = fold([
    intentRecord("i1", ref(A), [ev, e2]),
    outcomeRecord("i1", ref(A), [{ key: keyOf(ev), status: "Expired", state: "failed" }, { key: keyOf(e2), status: "Error", state: "open" }]),
    intentRecord("i2", ref(A), [e2]),
    outcomeRecord("i2", ref(A), [{ key: keyOf(e2), status: "InvalidDimension", state: "failed" }]),
  ]);
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(e2))?.state], ["failed", "unknown"]);
});
ledger("an unknown event resent and answered Duplicate is accepted", () => {
  const l = fold([
    intentRecord("i1", ref(A), [ev]),
    intentRecord("i2", ref(A), [ev]), outcomeRecord("i2", ref(A), [{ key: keyOf(ev), status: "Expired", state: "failed" }]),
    intentRecord("i3", ref(A), [ev]), outcomeRecord("i3", ref(A), [{ key: keyOf(ev), status: "Duplicate", state: "accepted", billedQuantity: ev.quantity }]),
  ]);
  assert.equal([l.get(keyOf(ev))?.state, l.get(keyOf(ev))?.billedQuantity], ["accepted", ev.quantity]);
  assert.equal(l.unresolved(), []);
});
ledger("unfinishedRun: the latest run of an input with unresolved events; the run that first sent an event keeps it", () => {
  const e2 = usageEvent(A, "mem", 2);
  const first = { digest: "d1", resolvedAt: "2026-11-23T10:59:00.000Z" };
  const other = { digest: "d2", resolvedAt: "2026-11-23T11:30:00.000Z" };
  const withInput = (r: AuditRecord, input: object) => ({ ...r, input });
  const l = fold([
    withInput(intentRecord("i1", ref(A), [ev, e2]), first),
    outcomeRecord("i1", ref(A), [{ key: keyOf(ev), status: "Accepted", state: "accepted", billedQuantity: 1 }, { key: keyOf(e2), status: "Error", state: "open" }]),
    // Another input's run resends e2 and loses the answer: e2 still belongs to the first run.
    withInput(intentRecord("i2", ref(A), [e2]), other),
  ]);
  assert.equal(l.unfinishedRun("d1"), first);
  assert.is(l.unfinishedRun("d2"), undefined);
  l.add(outcomeRecord("i2", ref(A), [{ key: keyOf(e2), status: "Duplicate", state: "accepted", billedQuantity: 2 }]));
  assert.is(l.unfinishedRun("d1"), undefined, "finished once every event is settled");
});
ledger("unresolvedSinceMs keeps old keys only while their fate is unknown", () => {
  const old = usageEvent(A, "cpu", 1, "2026-11-01T10:00:00Z");
  const oldDone = usageEvent(A, "mem", 1, "2026-11-01T10:00:00Z");
  const l = fold([
    intentRecord("i1", ref(A), [old, oldDone]),
    outcomeRecord("i1", ref(A), [{ key: keyOf(old), status: "Error", state: "open" }, { key: keyOf(oldDone), status: "Accepted", state: "accepted", billedQuantity: 1 }]),
  ], { sinceMs: NOW - 48 * 3_600_000, unresolvedSinceMs: -Infinity });
  assert.equal([...l.entries.keys()], [keyOf(old)]);
  const tail = fold([intentRecord("i1", ref(A), [old])], { sinceMs: NOW - 48 * 3_600_000 });
  assert.equal(tail.entries.size, 0);
});
ledger("unresolved() and hasResource() follow every change of an entry, in the entries' order", () => {
  const e1 = usageEvent(A, "cpu", 1, hoursAgo(2)), e2 = usageEvent(A, "mem", 2, hoursAgo(2)), e3 = usageEvent(B, "cpu", 3, hoursAgo(1));
  const l = new Ledger();
  assert.equal(l.unresolved(), []);
  assert.is(l.hasResource(keyResource(A.resourceId)), false);
  l.add(intentRecord("i1", ref(A), [e1, e2]));
  l.add(intentRecord("i2", ref(B), [e3]));
  assert.equal(l.unresolved().map((e) => e.key), [keyOf(e1), keyOf(e2), keyOf(e3)]);
  assert.ok(l.hasResource(keyResource(A.resourceId)));
  assert.is(l.hasResource(keyResource(C.resourceId)), false);
  l.add(outcomeRecord("i1", ref(A), [{ key: keyOf(e1), status: "Accepted", state: "accepted", billedQuantity: 1 }, { key: keyOf(e2), status: "Unknown", state: "unknown" }]));
  assert.equal(l.unresolved().map((e) => [e.key, e.state]), [[keyOf(e2), "unknown"], [keyOf(e3), "open"]]);
  l.add(outcomeRecord("i2", ref(B), [{ key: keyOf(e3), status: "Expired", state: "failed" }]));
  assert.equal(l.unresolved().map((e) => e.key), [keyOf(e2)]);
  // Sent again (a resend): open once more, in its first place.
  l.add(intentRecord("i3", ref(A), [e2]));
  l.add(intentRecord("i4", ref(A), [e1]));
  assert.equal(l.unresolved().map((e) => [e.key, e.state]), [[keyOf(e2), "open"]], "an accepted event is not reopened by an intent");
});
ledger.run();
