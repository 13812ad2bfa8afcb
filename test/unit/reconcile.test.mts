// reconcileUsage() (pure): the verdicts per customer × dimension × day and the settlements it
// allows; the ledger reading `reconcile` records back as settled.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseUtcDay, reconcileUsage } from "../../lib/metering/reconcile.mts";
import { Ledger, type LedgerEntry } from "../../lib/metering/ledger.mts";
import { reconcileRecord } from "../../lib/audit/records.mts";
import type { UsageReportRow } from "../../lib/metering/api.mts";

const HOUR_MS = 3_600_000;
const RID = "0f0e0d0c-0000-4000-8000-000000000001";
const customer = { subscriptionId: "11111111-1111-4111-8111-111111111111", managedResourceGroup: "mrg-a" };
const customers = [{ ...customer, resourceId: RID }];
const DAY = "2026-03-10";
const at = (h: number) => `${DAY}T${String(h).padStart(2, "0")}:00:00Z`;
const LATER = Date.parse(`${DAY}T00:00:00Z`) + 3 * 24 * HOUR_MS;

function entry(state: LedgerEntry["state"], hour: number, quantity: number, dimension = "cpu"): LedgerEntry {
  const event = { resourceId: RID, resourceUri: "/subscriptions/x/app", planId: "silver", dimension, quantity, effectiveStartTime: at(hour) };
  return { key: `${RID}|${dimension}|${at(hour)}`, state, event, customer, status: state === "accepted" ? "Accepted" : "Unconfirmed", time: at(hour), ...(state === "accepted" ? { billedQuantity: quantity } : {}) };
}
const row = (submittedQuantity: number, submittedCount: number, o: Partial<UsageReportRow> = {}): UsageReportRow => ({
  usageDate: `${DAY}T00:00:00Z`, usageResourceId: RID, dimension: "cpu", planId: "silver", reconStatus: "Submitted", submittedQuantity, submittedCount, ...o,
});
const run = (entries: LedgerEntry[], rows: UsageReportRow[], nowMs = LATER) => reconcileUsage({ entries, rows, customers, since: DAY, until: DAY, nowMs });

const V = suite("reconcileUsage()");

V("a day whose figures equal the ledger's is a match", () => {
  const r = run([entry("accepted", 1, 2), entry("accepted", 2, 3)], [row(5, 2)]);
  assert.equal(r.lines.map((l) => l.verdict), ["match"]);
  assert.ok(r.ok);
});

V("settles the one open event the API's count and sum leave room for as billed, the other as not billed", () => {
  const r = run([entry("accepted", 1, 2), entry("open", 2, 3), entry("unknown", 3, 4)], [row(6, 2)]);
  assert.equal(r.settlements.map((s) => [s.event.quantity, s.billed, s.record.settled]), [[3, false, "notBilled"], [4, true, "billed"]]);
  assert.equal(r.lines[0].verdict, "match");
  assert.equal([r.lines[0].ledgerQuantity, r.lines[0].ledgerCount], [6, 2]);
  assert.ok(r.ok);
  assert.is(r.settlements[0].record.evidence.submittedCount, 2);
});

V("no API row and only open events: none was billed", () => {
  const r = run([entry("open", 2, 3)], []);
  assert.equal(r.settlements.map((s) => s.billed), [false]);
  assert.ok(r.ok);
});

V("two explanations (equal quantities) leave both unresolved, with the numbers", () => {
  const r = run([entry("open", 2, 3), entry("open", 3, 3)], [row(3, 1)]);
  assert.equal(r.settlements, []);
  assert.is(r.unresolved.length, 2);
  assert.is(r.lines[0].verdict, "unresolved");
  assert.match(r.lines[0].note!, /more than one combination/);
  assert.not.ok(r.ok);
});

V("an open event inside the API's window is not settled (a resend will)", () => {
  const eventMs = Date.parse(at(2));
  const r = run([entry("open", 2, 3)], [row(3, 1)], eventMs + 2 * HOUR_MS);
  assert.equal(r.settlements, []);
  assert.match(r.unresolved[0].reason, /inside the API's 24-hour window/);
});

V("names the other discrepancies: unknown to the ledger, missing at Microsoft, quantity differs, Mismatch, Rejected", () => {
  assert.is(run([entry("accepted", 1, 2)], [row(5, 2)]).lines[0].verdict, "unknown to the ledger");
  assert.is(run([entry("accepted", 1, 2), entry("accepted", 2, 2)], [row(2, 1)]).lines[0].verdict, "missing at Microsoft");
  assert.is(run([entry("accepted", 1, 2)], []).lines[0].verdict, "missing at Microsoft");
  assert.is(run([entry("accepted", 1, 2)], [row(2.5, 1)]).lines[0].verdict, "quantity differs");
  const mismatch = run([entry("accepted", 1, 2), entry("open", 2, 1)], [row(3, 2, { reconStatus: "Mismatch" })]);
  assert.is(mismatch.lines[0].verdict, "Mismatch");
  assert.equal(mismatch.settlements, [], "a disputed day settles nothing");
  assert.is(run([entry("accepted", 1, 2)], [row(2, 1, { reconStatus: "Rejected" })]).lines[0].verdict, "Rejected");
  const stranger = run([], [row(9, 1, { usageResourceId: "99999999-0000-4000-8000-000000000009" })]);
  assert.equal([stranger.lines[0].verdict, stranger.lines[0].customer], ["unknown to the ledger", undefined]);
});

V("parseUtcDay() takes real YYYY-MM-DD dates only", () => {
  assert.is(parseUtcDay("2026-03-10"), Date.parse("2026-03-10T00:00:00Z"));
  for (const bad of ["2026-02-30", "2026-3-10", "yesterday", "2026-03-10T00:00"]) assert.is(parseUtcDay(bad), undefined, bad);
});

V.run();

const L = suite("Ledger and reconcile records");

function intentAndLostOutcome(id: string, hour: number, quantity: number) {
  const e = entry("open", hour, quantity);
  return [
    { time: at(hour), operation: "usageEvent.intent", id, customer, request: { method: "POST", url: "u", headers: {}, body: e.event } },
    { time: at(hour), operation: "usageEvent", id, customer, request: { method: "POST", url: "u", headers: {}, body: e.event }, events: [{ key: e.key, status: "Unconfirmed", state: "open" }] },
  ];
}

L("a billed settlement makes an open event accepted (Reconciled), a not-billed one failed (NotBilled); neither is unresolved", () => {
  const ledger = new Ledger();
  for (const r of [...intentAndLostOutcome("a", 1, 3), ...intentAndLostOutcome("b", 2, 4)]) ledger.add(r);
  assert.is(ledger.unresolved().length, 2);
  const settle = (hour: number, quantity: number, settled: "billed" | "notBilled") => {
    const e = entry("open", hour, quantity);
    ledger.add({ time: at(23), ...reconcileRecord({ customer, key: e.key, event: e.event, settled, evidence: { usageDate: DAY, submittedQuantity: 3, submittedCount: 1, reconStatus: "Submitted", acceptedQuantity: 0, acceptedCount: 0, unresolvedCount: 2, explanation: "x" } }) });
  };
  settle(1, 3, "billed");
  settle(2, 4, "notBilled");
  assert.equal(ledger.unresolved(), []);
  assert.equal([ledger.get(entry("open", 1, 3).key)?.state, ledger.get(entry("open", 1, 3).key)?.status, ledger.get(entry("open", 1, 3).key)?.billedQuantity], ["accepted", "Reconciled", 3]);
  assert.equal([ledger.get(entry("open", 2, 4).key)?.state, ledger.get(entry("open", 2, 4).key)?.status], ["failed", "NotBilled"]);
  // A settlement never overrides what the API answered.
  settle(1, 3, "notBilled");
  assert.is(ledger.get(entry("open", 1, 3).key)?.state, "accepted");
});

L.run();
