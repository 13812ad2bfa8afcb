import { defaultConcurrency, MAX_CONCURRENCY } from "../../lib/metering/run.mts";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  forEachConcurrently, loadLedger, planSubmission, runSubmission, summarise,
  type EventReport, type RunSubmissionOptions, type SubmissionProgress, type WorkItem,
} from "../../lib/metering/submission.mts";
import { Ledger, type EventResult } from "../../lib/metering/ledger.mts";
import { usageKey } from "../../lib/metering/time.mts";
import { createAuditWriter, type AuditRecord } from "../../lib/audit/log.mts";
import type { AuditEntry } from "../../lib/audit/records.mts";
import {
  describeUsageRequest, parseBatchResponse, parseUsageEventResponse, type MeteringClient, type UsageEvent,
  type UsageRequestDescription,
} from "../../lib/metering/api.mts";
import type { CustomerConfig } from "../../lib/state/config.mts";
import { UsageRows, type UsageRow } from "../../lib/metering/usage-file.mts";
import { tempDir } from "./_support.mts";
import { scanRecords } from "./_support.mts";
import { A, B, C, configWith, CUSTOMERS, HOUR_MS, hoursAgo, intentRecord, NOW, outcomeRecord, ref, usageEvent, type TestCustomer } from "./_usage-support.mts";

const config = configWith();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function row(c: TestCustomer, dimension: string, quantity: number, line: number, effectiveStartTime = hoursAgo(1)): UsageRow {
  return { line, subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup, dimension, quantity, effectiveStartTime };
}
const item = (e: UsageEvent, c: TestCustomer, extra: Partial<WorkItem> = {}): WorkItem => ({ event: e, customer: ref(c), key: usageKey(e), ...extra });
function ledgerOf(records: AuditRecord[]): Ledger {
  const l = new Ledger();
  for (const r of records) l.add(r);
  return l;
}
const accepted = (e: UsageEvent, billedQuantity = e.quantity): EventResult => ({ key: usageKey(e), status: "Accepted", state: "accepted", billedQuantity });

// ---- a fake MeteringClient: answers built by the real parsers from synthetic bodies --------------

interface Call { kind: "batch" | "single"; events: UsageEvent[]; request?: UsageRequestDescription; accessToken: string }
type ItemAnswer = { status: string; [key: string]: unknown };
type Answerer = (events: UsageEvent[], kind: "batch" | "single") => Promise<{ httpStatus: number; body?: unknown }> | { httpStatus: number; body?: unknown };

const acceptAll: Answerer = (events, kind) => kind === "batch"
  ? { httpStatus: 200, body: { result: events.map((e, i): ItemAnswer => ({ status: "Accepted", usageEventId: `u-${e.dimension}-${i}`, ...e })), count: events.length } }
  : { httpStatus: 200, body: { status: "Accepted", usageEventId: `u-${events[0].dimension}`, ...events[0] } };

function fakeClient(answer: Answerer = acceptAll, hooks: { before?: (call: Call) => void | Promise<void> } = {}) {
  const calls: Call[] = [];
  const client: MeteringClient = {
    describe: (o) => describeUsageRequest({ ...o, baseUrl: "https://marketplaceapi.microsoft.com" }),
    async submitUsageBatch(o) {
      const call: Call = { kind: "batch", events: o.events, request: o.request, accessToken: o.accessToken };
      calls.push(call);
      await hooks.before?.(call);
      const a = await answer(o.events, "batch");
      return parseBatchResponse({ httpStatus: a.httpStatus, bodyText: a.body === undefined ? "" : JSON.stringify(a.body), events: o.events, requestId: "req-1", correlationId: "corr-1" });
    },
    async submitUsageEvent(o) {
      const call: Call = { kind: "single", events: [o.event], request: o.request, accessToken: o.accessToken };
      calls.push(call);
      await hooks.before?.(call);
      const a = await answer([o.event], "single");
      return parseUsageEventResponse({ httpStatus: a.httpStatus, bodyText: a.body === undefined ? "" : JSON.stringify(a.body), event: o.event, requestId: "req-1" });
    },
  };
  return { client, calls };
}

function fakeTokens(fail: (ref: { subscriptionId: string }, n: number) => Error | undefined = () => undefined) {
  const requests: string[] = [];
  const getToken: RunSubmissionOptions["getToken"] = async (customer: CustomerConfig, r) => {
    requests.push(r.subscriptionId);
    const error = fail(r, requests.filter((s) => s === r.subscriptionId).length);
    if (error) throw error;
    return { token: `access-${r.subscriptionId}`, expiresOnTimestamp: NOW + HOUR_MS, claims: { tid: customer.tenantId, oid: "o" } };
  };
  return { getToken, requests };
}

async function withAudit<T>(fn: (auditPath: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await tempDir();
  try {
    return await fn(join(dir, "data", "audit.jsonl"));
  } finally {
    await cleanup();
  }
}
const readRecords = async (path: string) => (await scanRecords(path)).records;
/** Work items as plain data: a row's item is built on demand, its JSON is the WorkItem. */
const plainWork = (work: WorkItem[]) => JSON.parse(JSON.stringify(work));

// ---- planSubmission -------------------------------------------------------------------------------

const plan = suite("planSubmission()");
plan("sends rows the audit log knows nothing about, with the customer's billing ids and plan", () => {
  const p = planSubmission({ rows: [row(A, "cpu", 5, 2)], config, ledger: new Ledger(), now: NOW });
  const e = usageEvent(A, "cpu", 5);
  assert.equal(plainWork(p.work), [{ event: e, customer: ref(A), key: usageKey(e), line: 2 }]);
  assert.equal([p.settled, p.unknown], [[], []]);
});
plan("a row's work item reads like any WorkItem: event, customer, key and line, the same on every read", () => {
  const p = planSubmission({ rows: UsageRows.from([row(A, "cpu", 5, 2), row(B, "mem", 1.5, 3, hoursAgo(2))]), config, ledger: new Ledger(), now: NOW });
  const [a, b] = p.work;
  const e = usageEvent(B, "mem", 1.5, hoursAgo(2));
  assert.equal([b.event, b.customer, b.key, b.line, b.resend], [e, ref(B), usageKey(e), 3, undefined]);
  assert.equal([b.event, b.key], [e, usageKey(e)], "read twice");
  assert.equal(plainWork([a]), [{ event: usageEvent(A, "cpu", 5), customer: ref(A), key: usageKey(usageEvent(A, "cpu", 5)), line: 2 }]);
});
plan("items of one customer share one customer ref", () => {
  const p = planSubmission({ rows: [row(A, "cpu", 5, 2), row(A, "mem", 5, 3)], config, ledger: new Ledger(), now: NOW });
  assert.is(p.work[0].customer, p.work[1].customer);
});
plan("a row already accepted with the same quantity is AlreadyAccepted and not sent", () => {
  const e = usageEvent(A, "cpu", 5);
  const ledger = ledgerOf([intentRecord("i", ref(A), [e]), outcomeRecord("i", ref(A), [accepted(e)], { time: "2026-11-23T11:10:00.000Z" })]);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 3)], config, ledger, now: NOW });
  assert.equal(p.work, []);
  assert.equal(p.settled, [{
    key: usageKey(e), line: 3, customer: ref(A), event: e, sent: false, state: "accepted", billedQuantity: 5,
    status: "AlreadyAccepted", ok: true, message: "accepted earlier (2026-11-23T11:10:00.000Z); not sent again",
  }]);
});
plan("a row whose hour the API holds with another quantity is a Conflict and not sent", () => {
  const e = usageEvent(A, "cpu", 5);
  const ledger = ledgerOf([intentRecord("i", ref(A), [e]), outcomeRecord("i", ref(A), [{ key: usageKey(e), status: "Duplicate", state: "accepted", billedQuantity: 4 }])]);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 3)], config, ledger, now: NOW });
  assert.equal(p.work, []);
  assert.is(p.settled.length, 1);
  assert.equal([p.settled[0].status, p.settled[0].ok, p.settled[0].billedQuantity, p.settled[0].sent], ["Conflict", false, 4, false]);
  assert.match(p.settled[0].message!, /already holds quantity 4 for this hour .*; 5 cannot be billed for it/);
});
plan("force sends accepted rows again", () => {
  const e = usageEvent(A, "cpu", 5);
  const ledger = ledgerOf([intentRecord("i", ref(A), [e]), outcomeRecord("i", ref(A), [accepted(e, 4)])]);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 3)], config, ledger, force: true, now: NOW });
  assert.equal(p.work.map((w) => [w.event.quantity, w.resend]), [[5, undefined]]);
  assert.equal(p.settled, []);
});
plan("a row that failed for good before is sent again", () => {
  const e = usageEvent(A, "cpu", 5);
  const ledger = ledgerOf([intentRecord("i", ref(A), [e]), outcomeRecord("i", ref(A), [{ key: usageKey(e), status: "ResourceNotFound", state: "failed" }])]);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 3)], config, ledger, now: NOW });
  assert.equal(p.work.map((w) => [w.line, w.event.quantity, w.resend]), [[3, 5, undefined]]);
});
plan("an open entry with the same quantity is resent as recorded, with no conflict", () => {
  const recorded = { ...usageEvent(A, "cpu", 5), effectiveStartTime: hoursAgo(1).replace(":00:00Z", ":20:00Z") };
  const ledger = ledgerOf([intentRecord("i", ref(A), [recorded])]);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 4)], config, ledger, now: NOW });
  assert.equal(p.work, [{ event: recorded, customer: ref(A), key: usageKey(recorded), line: 4, resend: true, sentAt: new Date(NOW).toISOString() }]);
  assert.equal(p.settled, []);
});
plan("an open entry with another quantity: the recorded event is resent and the row is a Conflict", () => {
  const recorded = usageEvent(A, "cpu", 5);
  const ledger = ledgerOf([intentRecord("i", ref(A), [recorded], { time: "T0" })]);
  const p = planSubmission({ rows: [row(A, "cpu", 8, 4)], config, ledger, now: NOW });
  assert.equal(p.work.map((w) => [w.event.quantity, w.resend, w.line]), [[5, true, 4]]);
  assert.is(p.settled.length, 1);
  const s = p.settled[0];
  assert.equal([s.status, s.ok, s.sent, s.line, s.event.quantity], ["Conflict", false, false, 4, 8]);
  assert.is(s.message, "an earlier run (T0) sent quantity 5 for this hour without learning the outcome; that event is resent and 8 is not sent");
});
plan("open entries no row mentions are resent inside the window, else reported Unknown (it may have been billed)", () => {
  const fresh = usageEvent(A, "cpu", 1, hoursAgo(3));
  const edge = usageEvent(A, "mem", 1, hoursAgo(23));
  const tooOld = usageEvent(A, "disk", 1, hoursAgo(25));
  const gone = usageEvent(B, "cpu", 1, hoursAgo(2));
  const sentAt = "2026-11-22T11:05:00.000Z";
  const ledger = ledgerOf([intentRecord("i", ref(A), [fresh, edge, tooOld], { time: sentAt }), intentRecord("j", ref(B), [gone], { time: sentAt })]);
  const p = planSubmission({ rows: [], config: configWith([A, C]), ledger, now: NOW });
  assert.equal(p.work, [item(fresh, A, { resend: true, sentAt }), item(edge, A, { resend: true, sentAt })]);
  assert.equal(p.settled, []);
  assert.equal(p.unknown.map((r) => [r.event.dimension, r.status, r.ok, r.sent]), [["disk", "Unknown", false, false], ["cpu", "Unknown", false, false]]);
  assert.is(p.unknown[0].message, `sent at ${sentAt}, no answer, now past the API's window; it may have been billed: check Partner Center before billing it again`);
  assert.match(p.unknown[1].message!, /the customer is no longer connected; it may have been billed/);
});
plan("an event whose resend was refused stays Unknown past the window, and is resent inside it (a resend is safe)", () => {
  const inside = usageEvent(A, "cpu", 1, hoursAgo(3));
  const past = usageEvent(A, "mem", 1, hoursAgo(25));
  const ledger = ledgerOf([
    intentRecord("i1", ref(A), [inside, past], { time: "T1" }),
    intentRecord("i2", ref(A), [inside, past], { time: "T2" }),
    outcomeRecord("i2", ref(A), [{ key: usageKey(inside), status: "ResourceNotActive", state: "failed" }, { key: usageKey(past), status: "Expired", state: "failed" }]),
  ]);
  assert.equal([ledger.get(usageKey(inside))?.state, ledger.get(usageKey(past))?.state], ["unknown", "unknown"]);
  const p = planSubmission({ rows: [row(A, "mem", 1, 7, hoursAgo(25))], config, ledger, now: NOW });
  assert.equal(p.work, [item(inside, A, { resend: true, sentAt: "T1" })]);
  assert.equal(p.settled.map((r) => [r.line, r.status, r.ok]), [[7, "Unknown", false]]);
  assert.is(p.settled[0].message, "sent at T1, no answer; a resend was refused (Expired), now past the API's window; it may have been billed: check Partner Center before billing it again");
});
plan("an open entry is not sent twice when a row names it", () => {
  const recorded = usageEvent(A, "cpu", 5);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 2)], config, ledger: ledgerOf([intentRecord("i", ref(A), [recorded])]), now: NOW });
  assert.is(p.work.length, 1);
});
plan("with force, a row that names an open entry is sent once, as the row says", () => {
  const recorded = usageEvent(A, "cpu", 5);
  const p = planSubmission({ rows: [row(A, "cpu", 6, 2)], config, ledger: ledgerOf([intentRecord("i", ref(A), [recorded])]), force: true, now: NOW });
  assert.equal(p.work.map((w) => [w.line, w.event.quantity, w.resend]), [[2, 6, undefined]]);
});
plan("finds a resource the ledger holds whatever the case of its id in config.json", () => {
  const shouting = { ...A, resourceId: "ABCDEF01-5555-4555-8555-5555555555AB" };
  const e = usageEvent(shouting, "cpu", 5);
  const ledger = ledgerOf([intentRecord("i", ref(A), [e]), outcomeRecord("i", ref(A), [accepted(e)])]);
  const p = planSubmission({ rows: [row(A, "cpu", 5, 2)], config: configWith([shouting]), ledger, now: NOW });
  assert.equal(p.work, []);
  assert.equal(p.settled.map((s) => [s.status, s.line]), [["AlreadyAccepted", 2]]);
});
plan("refuses a row of a customer that is not connected: checkRows reports those before planning", () => {
  const stranger = { ...A, subscriptionId: "99999999-9999-4999-8999-999999999999" };
  const noBilling = configWith([A]);
  delete (noBilling.customers[A.subscriptionId][A.managedResourceGroup] as Partial<CustomerConfig>).billing;
  for (const [rows, cfg] of [[[row(A, "cpu", 1, 4), row(stranger, "cpu", 1, 5)], configWith([A])], [[row(A, "cpu", 1, 2)], noBilling]] as const) {
    try {
      planSubmission({ rows: [...rows], config: cfg, ledger: new Ledger(), now: NOW });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RangeError);
      assert.match((error as Error).message, /^Cannot plan line \d: customer .* is not connected \(checkRows refuses such rows\)$/);
    }
  }
});
plan("finds the customer in any case and reports it as config.json spells it", () => {
  const r = { ...row(A, "cpu", 1, 2), subscriptionId: A.subscriptionId.toUpperCase(), managedResourceGroup: A.managedResourceGroup.toUpperCase() };
  const p = planSubmission({ rows: [r], config, ledger: new Ledger(), now: NOW });
  assert.equal(p.work[0].customer, ref(A));
  assert.is(p.work[0].event.resourceId, A.resourceId);
});
plan.run();

// ---- runSubmission --------------------------------------------------------------------------------

const run = suite("runSubmission()");
run("sends at most 25 events per call, each call for one customer, and reports every event Accepted", async () => {
  await withAudit(async (auditPath) => {
    const work = [
      ...Array.from({ length: 60 }, (_, i) => item(usageEvent(A, `d${i}`, i + 1), A, { line: i + 2 })),
      ...Array.from({ length: 3 }, (_, i) => item(usageEvent(B, `d${i}`, 1), B)),
    ];
    const { client, calls } = fakeClient();
    const tokens = fakeTokens();
    const reports = await runSubmission({ work, config, auditPath, client, getToken: tokens.getToken });
    const sizes = (c: TestCustomer) => calls.filter((x) => x.events[0].resourceId === c.resourceId).map((x) => x.events.length);
    assert.equal(sizes(A), [25, 25, 10]);
    assert.equal(sizes(B), [3]);
    for (const call of calls) {
      assert.is(new Set(call.events.map((e) => e.resourceId)).size, 1);
      assert.is(call.kind, "batch");
      assert.ok(call.request!.url.endsWith("/api/batchUsageEvent?api-version=2018-08-31"));
      assert.is(call.accessToken, `access-${CUSTOMERS.find((c) => c.resourceId === call.events[0].resourceId)!.subscriptionId}`);
    }
    assert.equal(calls.flatMap((c) => c.events).filter((e) => e.resourceId === A.resourceId).map((e) => e.dimension), work.slice(0, 60).map((w) => w.event.dimension));
    assert.is(reports.length, 63);
    assert.ok(reports.every((r) => r.status === "Accepted" && r.ok && r.sent && r.state === "accepted"));
    const r0 = reports.find((r) => r.line === 2)!;
    assert.equal([r0.billedQuantity, r0.usageEventId, r0.httpStatus, r0.requestId, r0.correlationId], [1, "u-d0-0", 200, "req-1", "corr-1"]);
    assert.is(tokens.requests.length, 2, "one token request per customer: its batches go out together and share it");
  });
});
run("a lost lock stops the run before its next batch: the batches after it are not sent (NotSent), each intent names the lock", async () => {
  await withAudit(async (auditPath) => {
    const work = Array.from({ length: 100 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A));
    const { client, calls } = fakeClient();
    let lost: Error | undefined;
    const reports = await runSubmission({
      work, config, auditPath, client, getToken: fakeTokens().getToken, concurrency: 1,
      lock: { name: "shard-1-of-2", token: "t-1", lost: () => lost },
      onProgress: (p) => void (p.eventsDone >= 50 && (lost ??= new Error("Lost the lease on …/locks/shard-1-of-2.lock: not renewed for 45 s"))),
    });
    assert.is(calls.length, 2, "two batches went out before the lease was lost");
    assert.equal(reports.filter((r) => r.status === "Accepted").length, 50);
    const notSent = reports.filter((r) => r.status === "NotSent");
    assert.is(notSent.length, 50);
    assert.match(notSent[0].message!, /^not sent: Lost the lease on .*; the next run sends it$/);
    const intents = (await readRecords(auditPath)).filter((r) => r.operation.endsWith(".intent"));
    assert.is(intents.length, 2);
    assert.ok(intents.every((r) => JSON.stringify(r.lock) === JSON.stringify({ name: "shard-1-of-2", token: "t-1" })));
  });
});
run("onCustomerDone: once per customer, after its last batch has its outcome", async () => {
  await withAudit(async (auditPath) => {
    const work = [
      ...Array.from({ length: 60 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A)),
      ...Array.from({ length: 3 }, (_, i) => item(usageEvent(B, `d${i}`, 1), B)),
    ];
    const { client, calls } = fakeClient();
    const done: Array<{ subscriptionId: string; callsBefore: number; ofThisCustomer: number }> = [];
    await runSubmission({
      work, config, auditPath, client, getToken: fakeTokens().getToken, concurrency: 4,
      onCustomerDone: (_customer, ref) => done.push({
        subscriptionId: ref.subscriptionId,
        callsBefore: calls.length,
        ofThisCustomer: calls.filter((c) => c.events[0].resourceId === CUSTOMERS.find((x) => x.subscriptionId === ref.subscriptionId)!.resourceId).length,
      }),
    });
    assert.equal(done.map((d) => d.subscriptionId).sort(), [A.subscriptionId, B.subscriptionId].sort());
    assert.is(done.find((d) => d.subscriptionId === A.subscriptionId)!.ofThisCustomer, 3, "told after all three of A's batches");
    assert.is(done.find((d) => d.subscriptionId === B.subscriptionId)!.ofThisCustomer, 1);
  });
});
run("batchSize makes smaller chunks but never more than 25", async () => {
  await withAudit(async (auditPath) => {
    const work = Array.from({ length: 30 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A));
    const small = fakeClient();
    await runSubmission({ work, config, auditPath, client: small.client, getToken: fakeTokens().getToken, batchSize: 10 });
    assert.equal(small.calls.map((c) => c.events.length), [10, 10, 10]);
    const big = fakeClient();
    await runSubmission({ work, config, auditPath, client: big.client, getToken: fakeTokens().getToken, batchSize: 100 });
    assert.equal(big.calls.map((c) => c.events.length), [25, 5]);
  });
});
run("mode single sends one usageEvent per call and logs single-event records", async () => {
  await withAudit(async (auditPath) => {
    const work = [item(usageEvent(A, "a", 1), A), item(usageEvent(A, "b", 2), A), item(usageEvent(B, "c", 3), B)];
    const { client, calls } = fakeClient();
    const reports = await runSubmission({ work, config, auditPath, client, getToken: fakeTokens().getToken, mode: "single" });
    assert.equal(calls.map((c) => [c.kind, c.events.length]), [["single", 1], ["single", 1], ["single", 1]]);
    assert.equal(reports.map((r) => [r.event.dimension, r.status, r.usageEventId]).sort(), [["a", "Accepted", "u-a"], ["b", "Accepted", "u-b"], ["c", "Accepted", "u-c"]]);
    const records = await readRecords(auditPath);
    assert.equal(records.map((r) => r.operation).sort(), ["usageEvent", "usageEvent", "usageEvent", "usageEvent.intent", "usageEvent.intent", "usageEvent.intent"]);
    const intent = records.find((r) => r.operation === "usageEvent.intent" && (r.request!.body as UsageEvent).dimension === "a")!;
    assert.equal(intent.request!.body, work[0].event);
    assert.ok(intent.request!.url.endsWith("/api/usageEvent?api-version=2018-08-31"));
  });
});
run("keeps at most `concurrency` requests in flight, of one customer or several", async () => {
  await withAudit(async (auditPath) => {
    const work = CUSTOMERS.flatMap((c) => [item(usageEvent(c, "a", 1), c), item(usageEvent(c, "b", 1), c)]);
    let inFlight = 0;
    let max = 0;
    // Calls wait until two are in flight at once (the fsyncs before a call take what they
    // take), so the limit is reached whatever the timing; without a second slot they would
    // wait for the backstop and `max` stays 1.
    let bothInFlight!: () => void;
    const two = new Promise<void>((r) => (bothInFlight = r));
    const backstop = setTimeout(() => bothInFlight(), 10_000);
    const { client } = fakeClient(async (events, kind) => {
      max = Math.max(max, ++inFlight);
      if (inFlight >= 2) bothInFlight();
      await two;
      await sleep(15);
      inFlight--;
      return acceptAll(events, kind);
    });
    const reports = await runSubmission({ work, config, auditPath, client, getToken: fakeTokens().getToken, mode: "single", concurrency: 2 });
    clearTimeout(backstop);
    assert.is(max, 2);
    assert.is(reports.length, 10);
    max = 0;
    await runSubmission({ work, config, auditPath, client, getToken: fakeTokens().getToken, mode: "single", concurrency: 1 });
    assert.is(max, 1);
  });
});
run("sends the batches of one customer side by side: five batches take one call's time, not five", async () => {
  await withAudit(async (auditPath) => {
    const work = Array.from({ length: 125 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A));
    let inFlight = 0;
    let max = 0;
    let allInFlight!: () => void;
    const all = new Promise<void>((r) => (allInFlight = r));
    const backstop = setTimeout(() => allInFlight(), 10_000);
    const { client, calls } = fakeClient(async (events, kind) => {
      max = Math.max(max, ++inFlight);
      if (inFlight >= 5) allInFlight();
      await all;
      inFlight--;
      return acceptAll(events, kind);
    });
    const tokens = fakeTokens();
    const reports = await runSubmission({ work, config, auditPath, client, getToken: tokens.getToken, concurrency: 8 });
    clearTimeout(backstop);
    assert.is(calls.length, 5);
    assert.is(max, 5, "all five batches in flight at once");
    assert.is(tokens.requests.length, 1, "one token for the five");
    assert.is(summarise(reports).counts.Accepted, 125);
  });
});
run("writes each chunk's intent before calling the API, and its outcome after, under one id", async () => {
  await withAudit(async (auditPath) => {
    const work = [...Array.from({ length: 27 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A)), item(usageEvent(B, "x", 1), B)];
    const seenAtCall: string[] = [];
    const { client, calls } = fakeClient(acceptAll, {
      async before(call) {
        // What is on disk at the moment the request leaves.
        const { records } = await scanRecords(auditPath);
        const intent = records.find((r) => r.operation === "batchUsageEvent.intent"
          && r.request?.headers["x-ms-requestid"] === call.request!.headers["x-ms-requestid"]);
        assert.ok(intent, "intent on disk before the call");
        assert.equal((intent!.request!.body as { request: UsageEvent[] }).request, call.events);
        assert.not.ok(records.some((r) => r.id === intent!.id && r.operation === "batchUsageEvent"), "no outcome yet");
        seenAtCall.push(intent!.id!);
      },
    });
    await runSubmission({ work, config, auditPath, client, getToken: fakeTokens().getToken, concurrency: 1 });
    assert.is(calls.length, 3);
    assert.is(new Set(seenAtCall).size, 3);
    const records = await readRecords(auditPath);
    assert.is(records.length, 6);
    for (const outcome of records.filter((r) => r.operation === "batchUsageEvent")) {
      const intentIndex = records.findIndex((r) => r.id === outcome.id && r.operation === "batchUsageEvent.intent");
      assert.ok(intentIndex >= 0 && intentIndex < records.indexOf(outcome), "intent precedes outcome");
      assert.equal(outcome.customer, records[intentIndex].customer);
      assert.is(outcome.request, undefined, "the outcome refers to its intent's request by id, not a copy");
      assert.ok(records[intentIndex].request);
      assert.equal(outcome.tokenClaims, { tid: "44444444-4444-4444-8444-444444444444", oid: "o" });
      assert.is((outcome.response as { status: number }).status, 200);
      const events = outcome.events as EventResult[];
      assert.equal(events.map((e) => e.key), (records[intentIndex].request!.body as { request: UsageEvent[] }).request.map(usageKey));
      assert.ok(events.every((e) => e.status === "Accepted" && e.state === "accepted"));
    }
    assert.not.match(await readFile(auditPath, "utf8"), /access-/, "the access token is never logged");
  });
});
run("a client that throws leaves the events Unconfirmed and open, with the error in the outcome record", async () => {
  await withAudit(async (auditPath) => {
    const work = [item(usageEvent(A, "a", 1), A, { line: 2 }), item(usageEvent(A, "b", 2), A, { line: 3 })];
    const { client } = fakeClient(() => {
      throw Object.assign(new Error("Cannot reach the metering API: ECONNRESET"), { code: "ERR_METERING_API" });
    });
    const reports = await runSubmission({ work, config, auditPath, client, getToken: fakeTokens().getToken });
    assert.equal(reports.map((r) => [r.line, r.status, r.state, r.ok, r.sent]), [[2, "Unconfirmed", "open", false, true], [3, "Unconfirmed", "open", false, true]]);
    assert.is(reports[0].message, "Cannot reach the metering API: ECONNRESET");
    const records = await readRecords(auditPath);
    assert.equal(records.map((r) => r.operation), ["batchUsageEvent.intent", "batchUsageEvent"]);
    assert.equal(records[1].error, { code: "ERR_METERING_API", message: "Cannot reach the metering API: ECONNRESET" });
    assert.equal(records[1].events, work.map((w) => ({ key: w.key, status: "Unconfirmed", state: "open" })));
    assert.is(records[1].response, undefined);
    const { ledger } = await loadLedger({ auditPath, now: NOW });
    assert.equal(ledger.unresolved().map((e) => e.key).sort(), work.map((w) => w.key).sort());
  });
});
run("a token failure gives NotSent for that customer's events and writes no intent for them", async () => {
  await withAudit(async (auditPath) => {
    const work = [item(usageEvent(A, "a", 1), A), item(usageEvent(B, "b", 1), B, { line: 9, resend: true }), item(usageEvent(B, "c", 1), B)];
    const { client, calls } = fakeClient();
    const tokens = fakeTokens((r) => (r.subscriptionId === B.subscriptionId ? new Error("AADSTS700213: No matching federated identity record found") : undefined));
    const reports = await runSubmission({ work, config, auditPath, client, getToken: tokens.getToken });
    const ofB = reports.filter((r) => r.customer.subscriptionId === B.subscriptionId);
    assert.equal(ofB.map((r) => [r.event.dimension, r.status, r.ok, r.sent]), [["b", "NotSent", false, false], ["c", "NotSent", false, false]]);
    assert.equal([ofB[0].line, ofB[0].resend, ofB[0].state], [9, true, undefined]);
    assert.is(ofB[0].message, "AADSTS700213: No matching federated identity record found");
    assert.ok(calls.every((c) => c.events[0].resourceId === A.resourceId));
    assert.is(tokens.requests.filter((s) => s === B.subscriptionId).length, 1, "gives up on the customer after one failure");
    const records = await readRecords(auditPath);
    assert.ok(records.every((r) => r.customer!.subscriptionId === A.subscriptionId));
    assert.is(records.length, 2);
    assert.is(reports.find((r) => r.event.dimension === "a")!.status, "Accepted");
  });
});
run("a token failure on a later chunk leaves the chunks already sent as they were", async () => {
  await withAudit(async (auditPath) => {
    const work = Array.from({ length: 30 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A));
    const { client } = fakeClient();
    const tokens = fakeTokens((_, n) => (n === 2 ? new Error("token endpoint down") : undefined));
    // One batch at a time: the second asks for the token again (the first's is settled).
    const reports = await runSubmission({ work, config, auditPath, client, getToken: tokens.getToken, concurrency: 1 });
    assert.equal(summarise(reports).counts, { Accepted: 25, NotSent: 5 });
    assert.equal(reports.filter((r) => r.status === "NotSent").map((r) => r.event.dimension), ["d25", "d26", "d27", "d28", "d29"]);
    assert.is((await readRecords(auditPath)).length, 2);
  });
});
run("a batch refused as a whole with 403 gives every event a Forbidden failure", async () => {
  await withAudit(async (auditPath) => {
    const work = [item(usageEvent(A, "a", 1), A), item(usageEvent(A, "b", 1), A)];
    const { client } = fakeClient(() => ({ httpStatus: 403 }));
    const reports = await runSubmission({ work, config, auditPath, client, getToken: fakeTokens().getToken });
    assert.equal(reports.map((r) => [r.event.dimension, r.status, r.state, r.ok, r.sent]), [["a", "Forbidden", "failed", false, true], ["b", "Forbidden", "failed", false, true]]);
    const outcome = (await readRecords(auditPath))[1];
    assert.equal(outcome.events, work.map((w) => ({ key: w.key, status: "Forbidden", state: "failed" })));
    assert.equal(outcome.response, { status: 403, requestId: "req-1", correlationId: "corr-1", body: null });
  });
});
run("a batch refused with 400 is BadArgument with the API's message; a whole-batch 500 stays open", async () => {
  await withAudit(async (auditPath) => {
    const work = [item(usageEvent(A, "a", 1), A)];
    const bad = await runSubmission({
      work, config, auditPath, getToken: fakeTokens().getToken,
      client: fakeClient(() => ({ httpStatus: 400, body: { code: "BadArgument", message: "Too many events" } })).client,
    });
    assert.equal([bad[0].status, bad[0].state, bad[0].message], ["BadArgument", "failed", "the API answered the batch as a whole (HTTP 400): Too many events"]);
    const down = await runSubmission({ work, config, auditPath, getToken: fakeTokens().getToken, client: fakeClient(() => ({ httpStatus: 500, body: { message: "oops" } })).client });
    assert.equal([down[0].status, down[0].state, down[0].ok], ["HTTP 500", "open", false]);
    assert.match(down[0].message!, /HTTP 500.*oops/);
  });
});
run("reports per item: Duplicate of the same quantity is fine, of another a Conflict; refusals carry the API's detail", async () => {
  await withAudit(async (auditPath) => {
    const events = [usageEvent(A, "ok", 1), usageEvent(A, "same", 2), usageEvent(A, "other", 3), usageEvent(A, "late", 4)];
    const { client } = fakeClient((evs) => ({
      httpStatus: 200,
      body: {
        result: [
          { status: "Accepted", usageEventId: "u1", ...evs[0] },
          { status: "Duplicate", error: { code: "Conflict", additionalInfo: { acceptedMessage: { ...evs[1], usageEventId: "u0" } } } },
          { status: "Duplicate", error: { code: "Conflict", additionalInfo: { acceptedMessage: { ...evs[2], quantity: 7 } } } },
          { status: "Expired", error: { code: "BadArgument", message: "too old", details: [{ target: "effectiveStartTime", message: "past 24h" }] } },
        ],
      },
    }));
    const reports = await runSubmission({ work: events.map((e) => item(e, A)), config, auditPath, client, getToken: fakeTokens().getToken });
    const by = (d: string) => reports.find((r) => r.event.dimension === d)!;
    assert.equal([by("ok").status, by("ok").ok], ["Accepted", true]);
    assert.equal([by("same").status, by("same").ok, by("same").billedQuantity, by("same").original?.usageEventId], ["Duplicate", true, 2, "u0"]);
    assert.equal([by("other").status, by("other").ok, by("other").state, by("other").billedQuantity], ["Conflict", false, "accepted", 7]);
    assert.is(by("other").message, "the API kept an earlier event with quantity 7 for this hour; 3 was not billed: bill the difference in another hour");
    assert.equal([by("late").status, by("late").state, by("late").ok], ["Expired", "failed", false]);
    assert.is(by("late").message, "BadArgument; effectiveStartTime: past 24h; too old");
    assert.equal(summarise(reports), { counts: { Accepted: 1, Duplicate: 1, Conflict: 1, Expired: 1 }, ok: false });
  });
});
run("tells progress as chunks and customers finish", async () => {
  await withAudit(async (auditPath) => {
    const work = [...Array.from({ length: 26 }, (_, i) => item(usageEvent(A, `d${i}`, 1), A)), item(usageEvent(B, "x", 1), B)];
    const seen: SubmissionProgress[] = [];
    await runSubmission({ work, config, auditPath, client: fakeClient().client, getToken: fakeTokens().getToken, concurrency: 1, onProgress: (p) => seen.push(p) });
    assert.equal(seen, [
      { eventsDone: 25, eventsTotal: 27, customersDone: 0, customersTotal: 2 },
      { eventsDone: 26, eventsTotal: 27, customersDone: 0, customersTotal: 2 },
      { eventsDone: 26, eventsTotal: 27, customersDone: 1, customersTotal: 2 },
      { eventsDone: 27, eventsTotal: 27, customersDone: 1, customersTotal: 2 },
      { eventsDone: 27, eventsTotal: 27, customersDone: 2, customersTotal: 2 },
    ]);
  });
});
run("with no work, calls nothing and writes no record", async () => {
  await withAudit(async (auditPath) => {
    const { client, calls } = fakeClient();
    assert.equal(await runSubmission({ work: [], config, auditPath, client, getToken: fakeTokens().getToken }), []);
    assert.is(calls.length, 0);
    assert.is(await readFile(auditPath, "utf8"), "");
  });
});
run.run();

const sum = suite("summarise()");
sum("counts statuses and is ok only when every report is", () => {
  const r = (status: string, ok: boolean) => ({ status, ok }) as EventReport;
  assert.equal(summarise([r("Accepted", true), r("Accepted", true), r("AlreadyAccepted", true)]), { counts: { Accepted: 2, AlreadyAccepted: 1 }, ok: true });
  assert.equal(summarise([r("Accepted", true), r("NotSent", false)]), { counts: { Accepted: 1, NotSent: 1 }, ok: false });
  assert.equal(summarise([]), { counts: {}, ok: true });
});
sum.run();

const each = suite("forEachConcurrently()");
each("visits every item once with at most `limit` in flight", async () => {
  let inFlight = 0;
  let max = 0;
  const seen: number[] = [];
  await forEachConcurrently([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    inFlight++;
    max = Math.max(max, inFlight);
    await sleep(n % 3 === 0 ? 10 : 2);
    seen.push(n);
    inFlight--;
  });
  assert.is(max, 3);
  assert.equal(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
});
each("a limit below 1 still makes progress one at a time; an empty list calls nothing", async () => {
  const seen: number[] = [];
  await forEachConcurrently([1, 2], 0, async (n) => void seen.push(n));
  assert.equal(seen, [1, 2]);
  let called = false;
  await forEachConcurrently([], 4, async () => void (called = true));
  assert.is(called, false);
});
each("rejects with the error of a failing item", async () => {
  try {
    await forEachConcurrently([1, 2], 2, async (n) => {
      if (n === 2) throw new Error("item 2 failed");
    });
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, "item 2 failed");
  }
});
each.run();

const load = suite("loadLedger()");
load("folds a real audit file written by createAuditWriter, keeps 48 hours and counts torn lines", async () => {
  await withAudit(async (auditPath) => {
    const ok = usageEvent(A, "cpu", 5, hoursAgo(1));
    const pending = usageEvent(A, "mem", 2, hoursAgo(2));
    const ancient = usageEvent(B, "cpu", 1, hoursAgo(49));
    const writer = await createAuditWriter({ path: auditPath });
    // Records as written: the writer adds the time.
    const strip = ({ time: _t, ...r }: AuditRecord) => r as unknown as AuditEntry;
    await writer.append(strip(intentRecord("i1", ref(A), [ok])));
    await writer.append(strip(outcomeRecord("i1", ref(A), [accepted(ok)])));
    await writer.append(strip(intentRecord("i2", ref(A), [pending])));
    await writer.append(strip(intentRecord("i3", ref(B), [ancient])));
    await writer.close();
    await appendFile(auditPath, '{"time":"t","operation":"batchUsageEvent","id":"i2"\n[1]\n');
    const { ledger, invalidLines } = await loadLedger({ auditPath, now: NOW });
    assert.is(invalidLines, 2);
    assert.equal([...ledger.entries.keys()].sort(), [usageKey(ok), usageKey(pending)].sort());
    assert.equal([ledger.get(usageKey(ok))?.state, ledger.get(usageKey(ok))?.billedQuantity], ["accepted", 5]);
    assert.equal(ledger.unresolved().map((e) => e.event), [pending]);
  });
});
load("a missing audit file is an empty ledger", async () => {
  const { ledger, invalidLines } = await loadLedger({ auditPath: "/nonexistent/dir/audit.jsonl", now: NOW });
  assert.is(invalidLines, 0);
  assert.is(ledger.entries.size, 0);
});
load.run();

const conc = suite("defaultConcurrency()");
conc("one request slot per batch call, at least 1, at most MAX_CONCURRENCY", () => {
  assert.is(defaultConcurrency({ batchCalls: 0 }), 1);
  assert.is(defaultConcurrency({ batchCalls: 5 }), 5);
  assert.is(defaultConcurrency({ batchCalls: 400 }), MAX_CONCURRENCY);
  assert.is(MAX_CONCURRENCY, 64);
});
conc.run();
