import { suite } from "uvu";
import * as assert from "uvu/assert";
import { attentionOfLedger, attentionOfRun, notificationBody } from "../../lib/metering/attention.mts";
import { Ledger, type LedgerEntry } from "../../lib/metering/ledger.mts";
import { usageKey } from "../../lib/metering/time.mts";
import { parseDurationOption } from "../../lib/core/validate.mts";
import type { EventReport } from "../../lib/metering/submission.mts";
import { intentRecord, outcomeRecord } from "./_usage-support.mts";
import type { UsageStatus } from "../../lib/metering/status.mts";

const NOW = Date.parse("2026-12-02T03:30:00Z");
const HOUR = 3_600_000;
const customer = { subscriptionId: "0b1f6471-1bf0-4dda-aec3-cb9272f09590", managedResourceGroup: "mrg-a" };
const event = (hoursBack: number, dimension = "cpu") => ({
  resourceId: "5555", resourceUri: "/subscriptions/x", planId: "silver", dimension, quantity: 2,
  effectiveStartTime: new Date(Math.floor(NOW / HOUR) * HOUR - hoursBack * HOUR).toISOString().replace(".000Z", "Z"),
});
const report = (o: Partial<EventReport> & { hoursBack: number }): EventReport => {
  const ev = event(o.hoursBack, o.event?.dimension);
  return { key: usageKey(ev), customer, event: ev, status: "Accepted", ok: true, sent: true, ...o };
};

const run = suite("attentionOfRun()");
run("all accepted: nothing for a person", () => {
  const a = attentionOfRun({ reports: [report({ hoursBack: 1 })], skipped: [], now: NOW, warnBeforeMs: 3 * HOUR });
  assert.is(a.needsPerson, false);
  assert.equal(a.counts, { failed: 0, unknown: 0, expiring: 0, skipped: 0 });
});
run("refused, unknown, open near the window's end, open with time left, skipped rows", () => {
  const a = attentionOfRun({
    reports: [
      report({ hoursBack: 2, status: "InvalidDimension", ok: false, state: "failed", message: "m" }),
      report({ hoursBack: 23, status: "Unknown", ok: false, state: "open" }),
      report({ hoursBack: 22, status: "Unconfirmed", ok: false, state: "open" }),
      report({ hoursBack: 5, status: "Unconfirmed", ok: false, state: "open" }),
    ],
    skipped: [{ line: 4, message: "bad" }], now: NOW, warnBeforeMs: 3 * HOUR,
  });
  assert.equal(a.counts, { failed: 1, unknown: 1, expiring: 1, skipped: 1 }, "an open event 5 hours back is the next run's to resend");
  assert.is(a.failed[0].status, "InvalidDimension");
  assert.is(a.failed[0].message, "m");
  assert.is(a.expiring[0].leavesWindowAt, new Date(Date.parse(a.expiring[0].effectiveStartTime) + 24 * HOUR).toISOString().replace(".000Z", "Z"));
});

const led = suite("attentionOfLedger()");
led("failed in the window, unknown, open past the window, open near its end; not old failures or accepted ones", () => {
  const ledger = new Ledger();
  const add = (hoursBack: number, state: LedgerEntry["state"], dimension: string) => {
    const ev = event(hoursBack, dimension);
    const id = `i-${dimension}`;
    ledger.add(intentRecord(id, customer, [ev]));
    const status = ({ failed: "Expired", unknown: "Unknown", accepted: "Accepted" } as Record<string, UsageStatus>)[state];
    if (status) ledger.add(outcomeRecord(id, customer, [{ key: usageKey(ev), status, state, ...(state === "accepted" ? { billedQuantity: ev.quantity } : {}) }]));
    assert.is(ledger.get(usageKey(ev))?.state, state);
  };
  add(3, "failed", "a");
  add(30, "failed", "b");
  add(10, "unknown", "c");
  add(26, "open", "d");
  add(22, "open", "e");
  add(4, "open", "f");
  add(1, "accepted", "g");
  const a = attentionOfLedger({ ledger, now: NOW, warnBeforeMs: 3 * HOUR });
  assert.equal(a.failed.map((i) => i.dimension), ["a"]);
  assert.equal(a.unknown.map((i) => i.dimension).sort(), ["c", "d"]);
  assert.equal(a.expiring.map((i) => i.dimension), ["e"]);
});

const body = suite("notificationBody()");
body("the documented shape; lists cut at 50, counts whole", () => {
  const reports = Array.from({ length: 60 }, (_, i) => report({ hoursBack: 1, event: { ...event(1), dimension: `d${i}` }, status: "InvalidDimension", ok: false, state: "failed" }));
  const a = attentionOfRun({ reports, skipped: [], now: NOW, warnBeforeMs: 0 });
  const b = notificationBody(a, { time: new Date(NOW), host: "h1" });
  assert.equal(Object.keys(b), ["type", "version", "text", "time", "host", "counts", "failed", "unknown", "expiring", "skipped"]);
  assert.is((b.failed as unknown[]).length, 50);
  assert.equal(b.counts, { failed: 60, unknown: 0, expiring: 0, skipped: 0 });
  assert.is(b.text, "Marketplace metering needs a person (h1): 60 event(s) refused.");
});

const dur = suite("parseDurationOption()");
dur("hours and minutes; the fallback; refusals", () => {
  const o = { name: "warn-before", maxMs: 24 * HOUR, fallbackMs: 7 };
  assert.is(parseDurationOption("3h", o), 3 * HOUR);
  assert.is(parseDurationOption("90m", o), 90 * 60_000);
  assert.is(parseDurationOption("1h30m", o), 90 * 60_000);
  assert.is(parseDurationOption("0m", o), 0);
  assert.is(parseDurationOption(undefined, o), 7);
  for (const bad of ["", "3", "h", "3 h", "-1h", "25h", "1d"]) assert.throws(() => parseDurationOption(bad, o), /Cannot use --warn-before/, bad);
});

for (const s of [run, led, body, dur]) s.run();
