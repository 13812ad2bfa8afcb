// Audit logs written before outcomes referred to their intent (each outcome repeated the whole
// request): the ledger, the planner and the doctor's dimension check read them as they read
// today's. The fixture was written by runSubmission as it was then (main at 827a94e, before issue 18),
// with a fake metering client: a batch of 27 events (two calls), one of three with a
// Duplicate of another quantity and an InvalidDimension, and two single events of which one
// got no answer (connection reset).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { AuditRecord } from "../../lib/audit/log.mts";
import { dimensionVerdicts } from "../../lib/doctor/diagnose.mts";
import { Ledger } from "../../lib/metering/ledger.mts";
import { planSubmission } from "../../lib/metering/submission.mts";
import { usageKey } from "../../lib/metering/time.mts";
import { A, B, C, configWith, hoursAgo, NOW, ref, usageEvent } from "./_usage-support.mts";
import { scanRecords } from "./_support.mts";

const FIXTURE = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "fixtures", "audit-outcomes-with-request.jsonl");
const isOutcome = (r: AuditRecord) => r.operation === "usageEvent" || r.operation === "batchUsageEvent";
/** The same log as today's writer writes it: outcomes without their request. */
const asToday = (records: AuditRecord[]) => records.map((r) => {
  if (!isOutcome(r)) return r;
  const { request: _request, ...rest } = r;
  return rest as AuditRecord;
});
const fold = (records: AuditRecord[]) => {
  const l = new Ledger();
  for (const r of records) l.add(r);
  return l;
};

const old = suite("audit logs whose outcomes repeat the request");
old("the fixture is such a log: every outcome carries the request of its intent", async () => {
  const { records, invalidLines } = await scanRecords(FIXTURE);
  assert.is(invalidLines, 0);
  const outcomes = records.filter(isOutcome);
  assert.is(outcomes.length, 5);
  for (const o of outcomes) assert.equal(o.request, records.find((r) => r.id === o.id && r.operation.endsWith(".intent"))!.request);
  assert.ok((await readFile(FIXTURE, "utf8")).length > 0);
});
old("the ledger folds it exactly as it folds today's form", async () => {
  const { records } = await scanRecords(FIXTURE);
  const then = fold(records), now = fold(asToday(records));
  assert.equal([...then.entries.entries()], [...now.entries.entries()]);
  const state = (c: typeof A, dimension: string, quantity: number, hours: number) => then.get(usageKey(usageEvent(c, dimension, quantity, hoursAgo(hours))));
  for (let i = 0; i < 27; i++) assert.is(state(A, `d${i}`, i + 1, 2)?.state, "accepted");
  assert.equal([state(B, "cpu", 3, 2)?.state, state(B, "dup", 4, 2)?.billedQuantity, state(B, "bad", 1, 2)?.status], ["accepted", 7, "InvalidDimension"]);
  assert.equal([state(C, "one", 2, 3)?.state, state(C, "lost", 5, 3)?.state], ["accepted", "open"]);
  assert.equal(then.unresolved().map((e) => e.event.dimension), ["lost"]);
});
old("the planner settles its rows and resends its open event as it would from today's form", async () => {
  const { records } = await scanRecords(FIXTURE);
  const rows = [
    { line: 2, subscriptionId: A.subscriptionId, managedResourceGroup: A.managedResourceGroup, dimension: "d0", quantity: 1, effectiveStartTime: hoursAgo(2) },
    { line: 3, subscriptionId: B.subscriptionId, managedResourceGroup: B.managedResourceGroup, dimension: "dup", quantity: 4, effectiveStartTime: hoursAgo(2) },
  ];
  const plans = [records, asToday(records)].map((log) => planSubmission({ rows, config: configWith(), ledger: fold(log), now: NOW }));
  assert.equal(JSON.parse(JSON.stringify(plans[0])), JSON.parse(JSON.stringify(plans[1])));
  assert.equal(plans[0].settled.map((r) => r.status), ["AlreadyAccepted", "Conflict"]);
  assert.equal(plans[0].work.map((w) => [w.event.dimension, w.resend, w.customer]), [["lost", true, ref(C)]]);
});
old("the doctor's dimension verdicts are the same from both forms", async () => {
  const { records } = await scanRecords(FIXTURE);
  for (const c of [A, B, C]) {
    const who = ref(c);
    assert.equal(dimensionVerdicts(records, who), dimensionVerdicts(asToday(records), who));
  }
  assert.equal(dimensionVerdicts(asToday(records), ref(B)), [
    { dimension: "bad", accepted: 0, invalid: 1, planId: "plan2", firstInvalidAt: "2026-12-02T02:12:37.595Z", lastInvalidAt: "2026-12-02T02:12:37.595Z" },
    { dimension: "cpu", accepted: 1, invalid: 0 },
    { dimension: "dup", accepted: 1, invalid: 0 },
  ]);
});
old.run();
