// buildUsageReport() and its helpers (pure): what counts as billed (Accepted, Duplicate's
// original quantity, Reconciled; not NotBilled, refusals or events of unknown fate), periods,
// exact sums and amounts, config prices and their one-line problems, CSV; renderReportHtml's
// escaping.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { buildUsageReport, defaultReportPeriod, periodsBetween, priceListOf, quantityText, reportCsv } from "../../lib/metering/report.mts";
import { escapeHtml, renderReportHtml } from "../../lib/metering/report-html.mts";
import { Ledger } from "../../lib/metering/ledger.mts";
import { reconcileRecord } from "../../lib/audit/records.mts";
import type { UsageEvent } from "../../lib/metering/api.mts";
import type { MeteringConfig } from "../../lib/state/config.mts";

const DAY_MS = 86_400_000;
const A = { subscriptionId: "11111111-1111-4111-8111-111111111111", managedResourceGroup: "mrg-a" };
const B = { subscriptionId: "22222222-2222-4222-8222-222222222222", managedResourceGroup: "mrg-b" };
const RID = { [A.managedResourceGroup]: "0f0e0d0c-0000-4000-8000-00000000000a", [B.managedResourceGroup]: "0f0e0d0c-0000-4000-8000-00000000000b" };
const at = (day: string, h: number) => `${day}T${String(h).padStart(2, "0")}:00:00Z`;
let n = 0;

function event(who: typeof A, dimension: string, quantity: number, when: string, planId = "silver"): UsageEvent {
  return { resourceId: RID[who.managedResourceGroup], resourceUri: `/subscriptions/${who.subscriptionId}/app`, planId, dimension, quantity, effectiveStartTime: when };
}
const key = (e: UsageEvent) => `${e.resourceId.toLowerCase()}|${e.dimension}|${e.effectiveStartTime}`;

/** An intent and its outcome, as 2-emit-meter writes them. */
function sent(ledger: Ledger, who: typeof A, e: UsageEvent, result: { status: string; state: string; billedQuantity?: number }) {
  const id = `r${++n}`;
  ledger.add({ time: e.effectiveStartTime, operation: "batchUsageEvent.intent", id, customer: who, request: { method: "POST", url: "u", headers: {}, body: { request: [e] } } });
  ledger.add({ time: e.effectiveStartTime, operation: "batchUsageEvent", id, customer: who, events: [{ key: key(e), ...result }] });
}
const accepted = (ledger: Ledger, who: typeof A, e: UsageEvent) => sent(ledger, who, e, { status: "Accepted", state: "accepted", billedQuantity: e.quantity });
const lost = (ledger: Ledger, who: typeof A, e: UsageEvent) => sent(ledger, who, e, { status: "Unconfirmed", state: "open" });
function settle(ledger: Ledger, who: typeof A, e: UsageEvent, settled: "billed" | "notBilled") {
  ledger.add({ time: at("2026-03-20", 0), ...reconcileRecord({ customer: who, key: key(e), event: e, settled, evidence: { usageDate: e.effectiveStartTime.slice(0, 10), submittedQuantity: 0, submittedCount: 0, reconStatus: "Submitted", acceptedQuantity: 0, acceptedCount: 0, unresolvedCount: 1, explanation: "x" } }) });
}

const SINCE = Date.parse("2026-03-01T00:00:00Z");
const UNTIL = Date.parse("2026-03-31T00:00:00Z");

const R = suite("buildUsageReport()");

R("billed: Accepted, Duplicate (the original's quantity) and Reconciled; not NotBilled, refusals or events of unknown fate", () => {
  const ledger = new Ledger({ sinceMs: SINCE });
  accepted(ledger, A, event(A, "cpu", 2, at("2026-03-10", 1)));
  sent(ledger, A, event(A, "cpu", 9, at("2026-03-10", 2)), { status: "Duplicate", state: "accepted", billedQuantity: 4 });
  sent(ledger, A, event(A, "cpu", 7, at("2026-03-10", 3)), { status: "Expired", state: "failed" });
  const settledBilled = event(A, "cpu", 5, at("2026-03-11", 1));
  const settledNot = event(A, "cpu", 6, at("2026-03-11", 2));
  lost(ledger, A, settledBilled);
  lost(ledger, A, settledNot);
  lost(ledger, A, event(A, "cpu", 8, at("2026-03-11", 3)));
  settle(ledger, A, settledBilled, "billed");
  settle(ledger, A, settledNot, "notBilled");
  const r = buildUsageReport({ ledger, sinceMs: SINCE, untilMs: UNTIL, by: "day" });
  assert.equal(r.cells.map((c) => [c.period, c.quantity, c.count]), [["2026-03-10", 6, 2], ["2026-03-11", 5, 1]]);
  assert.equal(r.totals.byDimension, [{ dimension: "cpu", quantity: 11, count: 3 }]);
  assert.equal(r.unresolved, { count: 1, quantity: 8 });
  assert.is(r.periods.length, 31);
});

R("periods by hour, day and month; events outside the period and other customers are left out", () => {
  const ledger = new Ledger({ sinceMs: SINCE });
  accepted(ledger, A, event(A, "cpu", 1, at("2026-03-10", 1)));
  accepted(ledger, A, event(A, "cpu", 1, at("2026-03-10", 5)));
  accepted(ledger, B, event(B, "cpu", 3, at("2026-03-12", 5)));
  accepted(ledger, B, event(B, "cpu", 3, at("2026-04-01", 0)));
  const byHour = buildUsageReport({ ledger, sinceMs: SINCE, untilMs: UNTIL, by: "hour", only: { subscriptionId: A.subscriptionId.toUpperCase(), managedResourceGroup: "MRG-A" } });
  assert.equal(byHour.cells.map((c) => c.period), ["2026-03-10T01:00Z", "2026-03-10T05:00Z"]);
  assert.is(byHour.periods.length, 31 * 24);
  const byMonth = buildUsageReport({ ledger, sinceMs: SINCE, untilMs: UNTIL, by: "month" });
  assert.equal(byMonth.cells.map((c) => [c.customer.managedResourceGroup, c.period, c.quantity]), [["mrg-a", "2026-03", 2], ["mrg-b", "2026-03", 3]]);
  assert.equal(byMonth.periods, ["2026-03"]);
});

R("sums and amounts are exact: 0.1 ten thousand times is 1000, at 0.07 a unit 70.00", () => {
  const ledger = new Ledger({ sinceMs: SINCE });
  for (let h = 0; h < 10_000; h++) accepted(ledger, A, event(A, "cpu", 0.1, new Date(SINCE + h * 3_600_000).toISOString().replace(".000Z", "Z")));
  accepted(ledger, B, event(B, "gb", 1.005, at("2026-03-02", 0), "gold"));
  const prices = { silver: { currency: "EUR", dimensions: { cpu: "0.07" } }, gold: { currency: "USD", dimensions: { gb: "0.333333" } } };
  const r = buildUsageReport({ ledger, sinceMs: SINCE, untilMs: SINCE + 500 * DAY_MS, by: "month", prices });
  assert.is(r.totals.byDimension.find((d) => d.dimension === "cpu")!.quantity, 1000);
  assert.equal(r.customers.map((c) => c.amounts), [[{ currency: "EUR", amount: "70.00" }], [{ currency: "USD", amount: "0.334999665" }]]);
  assert.equal(r.totals.amounts, [{ currency: "EUR", amount: "70.00" }, { currency: "USD", amount: "0.334999665" }]);
  assert.equal(r.unpriced, []);
});

R("a dimension without a price has no amount and is listed", () => {
  const ledger = new Ledger({ sinceMs: SINCE });
  accepted(ledger, A, event(A, "cpu", 2, at("2026-03-10", 1)));
  accepted(ledger, A, event(A, "gb", 2, at("2026-03-10", 1)));
  const r = buildUsageReport({ ledger, sinceMs: SINCE, untilMs: UNTIL, by: "day", prices: { silver: { currency: "USD", dimensions: { cpu: "1.5" } } } });
  assert.equal(r.customers[0].lines.map((l) => [l.dimension, l.amount]), [["cpu", "3.00"], ["gb", undefined]]);
  assert.equal(r.unpriced, [{ planId: "silver", dimension: "gb" }]);
});

R.run();

const H = suite("report helpers");

H("defaultReportPeriod: this UTC month up to today; periodsBetween counts inclusive days", () => {
  assert.equal(defaultReportPeriod(Date.parse("2026-12-02T05:00:00Z")), { sinceMs: Date.parse("2026-12-01T00:00:00Z"), untilMs: Date.parse("2026-12-02T00:00:00Z") });
  assert.equal(periodsBetween(Date.parse("2026-11-30T00:00:00Z"), Date.parse("2027-01-01T00:00:00Z"), "month"), ["2026-11", "2026-12", "2027-01"]);
  assert.is(periodsBetween(SINCE, SINCE, "hour").length, 24);
});

H("priceListOf: absent plans are no prices; each bad value is one problem naming its key", () => {
  const cfg = (plans: unknown) => ({ publisher: {}, customers: {}, plans }) as MeteringConfig;
  assert.equal(priceListOf({ publisher: {}, customers: {} }), { prices: {} });
  assert.equal(priceListOf(cfg({ gold: { currency: "USD", dimensions: { cpu: { price: 0.25 } } } })), { prices: { gold: { currency: "USD", dimensions: { cpu: "0.25" } } } });
  for (const [plans, problem] of [
    [[], /^plans: expected an object/],
    [{ gold: { currency: "usd", dimensions: {} } }, /^plans\.gold\.currency: expected a currency code/],
    [{ gold: { currency: "USD", dimensions: { cpu: { price: "1,5" } } } }, /^plans\.gold\.dimensions\.cpu\.price: expected a price per unit/],
    [{ gold: { currency: "USD", dimensions: { cpu: { price: -1 } } } }, /got -1$/],
    [{ gold: { currency: "USD", dimensions: { cpu: 3 } } }, /cpu\.price/],
  ] as Array<[unknown, RegExp]>) {
    const r = priceListOf(cfg(plans));
    assert.is(r.prices, undefined);
    assert.match(r.problem!, problem);
  }
});

H("reportCsv quotes what needs quoting; quantityText prints exact decimals", () => {
  const ledger = new Ledger({ sinceMs: SINCE });
  accepted(ledger, A, event(A, 'a,"b"', 1.25, at("2026-03-10", 1)));
  const csv = reportCsv(buildUsageReport({ ledger, sinceMs: SINCE, untilMs: UNTIL, by: "day" }));
  assert.is(csv.split("\r\n")[1], `${A.subscriptionId},mrg-a,${RID["mrg-a"]},silver,"a,""b""",2026-03-10,1.25,1,,`);
  assert.is(quantityText(1e-7), "0.0000001");
  assert.is(quantityText(1000), "1000");
});

H("renderReportHtml escapes every name and loads nothing", () => {
  const ledger = new Ledger({ sinceMs: SINCE });
  const evil = `<img src=x onerror=alert(1)>"'&`;
  accepted(ledger, A, event(A, evil, 1, at("2026-03-10", 1), `<b>${evil}`));
  const html = renderReportHtml(buildUsageReport({ ledger, sinceMs: SINCE, untilMs: UNTIL, by: "day", prices: { [`<b>${evil}`]: { currency: "USD", dimensions: { [evil]: "2" } } } }));
  assert.not.ok(html.includes("<img"), "no element from a name");
  assert.not.ok(/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(html), "no script, no URL but the SVG namespace");
  assert.ok(html.includes(escapeHtml(evil)));
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  assert.is(escapeHtml(`<a href="x">'&`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;");
});

H.run();
