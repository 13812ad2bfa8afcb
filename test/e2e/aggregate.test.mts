// 2-emit-meter --file --aggregate against the sandbox, as a process: raw usage records (many
// per hour, at any instant, out of order, customers in any case) summed into one event per
// customer, dimension and UTC hour, with sums the metering emulator receives exactly equal to
// the raw sums (decimal, not floating-point); a rerun bills nothing twice; a sum above the
// ceiling refused before anything is sent.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";
import { hourBack, isoHour } from "../helpers/hours.mts";

const { sb, env, dataDir, auditPath, customers, events, counters } = await startFleet({ customers: 8, dimensions: 4 });
const HOURS = [hourBack(3), hourBack(2), hourBack(1)];
const meteringCalls = async () => Object.values((await counters()).metering ?? {}).reduce((a, b) => a + b, 0);
const file = async (name: string, text: string) => {
  const path = join(dataDir, "..", `${Date.now()}-${Math.random().toString(36).slice(2)}-${name}`);
  await writeFile(path, text);
  return path;
};

// 24,000 raw records: quantities in hundredths (0.01 … 9.99, the decimals a double cannot add
// exactly), at a pseudo-random second of one of three hours, in a shuffled order; half of the
// customer ids upper-cased. The expected sums are exact integers of hundredths.
const RECORDS = 24_000;
const expected = new Map<string, number>();
const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
let seed = 12345;
const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
for (let i = 0; i < RECORDS; i++) {
  const c = customers[rand(customers.length)];
  const dimension = c.dimensions[rand(c.dimensions.length)];
  const hour = HOURS[rand(HOURS.length)];
  const cents = 1 + rand(999);
  const at = new Date(hour + rand(3_600_000)).toISOString().replace(/\.\d{3}Z$/, "Z");
  const sub = i % 2 ? c.subscriptionId.toUpperCase() : c.subscriptionId;
  lines.push(`${sub},${c.managedResourceGroup},${dimension},${(cents / 100).toFixed(2)},${at}`);
  const key = `${c.resourceUsageId}|${dimension}|${hour}`;
  expected.set(key, (expected.get(key) ?? 0) + cents);
}
const RAW = `${lines.join("\n")}\n`;

const A = suite("2-emit-meter --file --aggregate");

A("24,000 raw records become one event per customer, dimension and hour, each exactly the raw sum", async () => {
  const r = await runScript("2-emit-meter.mts", ["--file", await file("raw.csv", RAW), "--aggregate", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.aggregated, { records: RECORDS, hours: 3, events: expected.size });
  assert.equal(report.counts, { Accepted: expected.size });
  const received = (await events()).filter((e) => HOURS.includes(Date.parse(e.effectiveStartTime)));
  assert.is(received.length, expected.size, "one event per customer, dimension and hour");
  for (const e of received) {
    const cents = expected.get(`${e.resourceId}|${e.dimension}|${Date.parse(e.effectiveStartTime)}`);
    assert.ok(cents !== undefined, `an event nobody asked for: ${JSON.stringify(e)}`);
    // The decimal the raw sum is, as the nearest double: what a correct sum sends.
    assert.is(e.quantity, Number(`${Math.trunc(cents / 100)}.${String(cents % 100).padStart(2, "0")}`), JSON.stringify(e));
  }
});

A("the same raw file again: every hour already accepted, no call to the metering API, exit 0", async () => {
  const before = await meteringCalls();
  const r = await runScript("2-emit-meter.mts", ["--file", await file("raw.csv", RAW), "--aggregate", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  assert.equal(JSON.parse(r.stdout).counts, { AlreadyAccepted: expected.size });
  assert.is(await meteringCalls(), before);
});

A("an hour whose records sum above --max-quantity: refused at its first line, nothing sent, exit 2", async () => {
  await admin(sb, "DELETE", "/requests");
  const c = customers[0];
  const at = (m: number) => isoHour(hourBack(4) + m * 60_000 + m * 1000);
  const text = [
    "subscription,managed-resource-group,dimension,quantity,effective-start-time",
    `${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},60,${at(1)}`,
    `${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[1]},1,${at(2)}`,
    `${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},40.5,${at(3)}`,
  ].join("\n");
  const r = await runScript("2-emit-meter.mts", ["--file", await file("big.csv", text), "--aggregate", "--max-quantity", "100"], { env });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /line 2: 2 records for .* sum to 100\.5, above the ceiling of 100 per event/);
  assert.is(await meteringCalls(), 0, "nothing sent");
});

// Late usage, on one customer and dimension, in hours the file above does not touch.
const L = { c: customers[5], at: (hoursBack: number, minute: number) => isoHour(hourBack(hoursBack) + minute * 60_000) };
const lateCsv = (rows: Array<[string, number, string]>) =>
  ["subscription,managed-resource-group,dimension,quantity,effective-start-time", ...rows.map(([dim, q, at]) => `${L.c.subscriptionId},${L.c.managedResourceGroup},${dim},${q},${at}`)].join("\n");
const heldAt = async (dimension: string, hoursBack: number) =>
  (await events()).filter((e) => e.resourceId === L.c.resourceUsageId && e.dimension === dimension && Date.parse(e.effectiveStartTime) === hourBack(hoursBack));
const carryRecords = async () => (await readFile(auditPath, "utf8")).split("\n").filter((l) => l.includes('"usage.carry"')).map((l) => JSON.parse(l));
const [D, D2] = [L.c.dimensions[0], L.c.dimensions[1]];

A("late records (an hour another file billed): rejected by default, exit 1, nothing sent for that hour; the rest billed", async () => {
  const first = await runScript("2-emit-meter.mts", ["--file", await file("l1.csv", lateCsv([[D, 5, L.at(10, 5)]])), "--aggregate"], { env });
  assert.is(first.code, 0, describe(first));
  const r = await runScript("2-emit-meter.mts", ["--file", await file("l2.csv", lateCsv([[D, 2.5, L.at(10, 40)], [D2, 1, L.at(9, 1)]])), "--aggregate", "--json"], { env });
  assert.is(r.code, 1, describe(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.counts, { Late: 1, Accepted: 1 });
  const late = report.events.find((e: { status: string }) => e.status === "Late");
  assert.match(late.message, /this hour was billed by another input .*: 2\.5 cannot be billed for it; pass --late carry/);
  assert.equal((await heldAt(D, 10)).map((e) => e.quantity), [5], "the API still holds the first file's quantity, nothing else was sent for it");
  assert.equal((await heldAt(D2, 9)).map((e) => e.quantity), [1]);
});

A("--late carry: late records go to the earliest later hour with no event (recorded with their lines); a rerun carries nothing twice", async () => {
  const text = lateCsv([[D, 0.25, L.at(10, 50)], [D, 0.5, L.at(10, 55)], [D, 1.25, L.at(8, 3)]]);
  const path = await file("l3.csv", text);
  const r = await runScript("2-emit-meter.mts", ["--file", path, "--aggregate", "--late", "carry", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.counts, { Accepted: 2 });
  assert.equal(report.carried.map((c: { from: string; to: string; quantity: number }) => [c.from, c.to, c.quantity]), [[isoHour(hourBack(10)), isoHour(hourBack(9)), 0.75]]);
  assert.equal((await heldAt(D, 10)).map((e) => e.quantity), [5]);
  assert.equal((await heldAt(D, 9)).map((e) => e.quantity), [0.75], "carried into the first free hour of that dimension");
  assert.equal((await heldAt(D, 8)).map((e) => e.quantity), [1.25]);
  const [carry, ...more] = await carryRecords();
  assert.equal(more, []);
  assert.equal([carry.from, carry.to, carry.quantity, carry.records, carry.lines], [isoHour(hourBack(10)), isoHour(hourBack(9)), 0.75, 2, [2, 3]]);

  const before = await meteringCalls();
  const again = await runScript("2-emit-meter.mts", ["--file", path, "--aggregate", "--late", "carry", "--json"], { env });
  assert.is(again.code, 0, describe(again));
  assert.equal(JSON.parse(again.stdout).counts, { AlreadyAccepted: 2 });
  assert.is(await meteringCalls(), before, "nothing sent again");
  assert.is((await carryRecords()).length, 1, "the carry is recorded once");
});

A("records past the API's window: reported as not billable (exit 1), not as bad input; the rest is billed", async () => {
  const old = new Date(Date.now() - 30 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const r = await runScript("2-emit-meter.mts", ["--file", await file("l4.csv", lateCsv([[D2, 4, old], [D2, 2, L.at(7, 9)]])), "--aggregate", "--late", "carry", "--json"], { env });
  assert.is(r.code, 1, describe(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.counts, { Late: 1, Accepted: 1 });
  assert.match(report.events.find((e: { status: string }) => e.status === "Late").message, /past the API's 24-hour window: this usage cannot be billed in any hour/);
  assert.equal((await heldAt(D2, 7)).map((e) => e.quantity), [2]);
});

A("--late without --aggregate, or another policy: a usage error, exit 2", async () => {
  for (const [args, re] of [[["--late", "carry"], /Cannot use --late without --aggregate/], [["--aggregate", "--late", "later"], /Cannot use --late "later": expected reject or carry/]] as const) {
    const r = await runScript("2-emit-meter.mts", ["--file", await file("x.csv", RAW), ...args], { env });
    assert.is(r.code, 2, describe(r));
    assert.match(r.stderr, re);
  }
});

A("--aggregate without --file: a usage error, exit 2", async () => {
  const c = customers[0];
  const r = await runScript("2-emit-meter.mts", [c.subscriptionId, c.managedResourceGroup, "1", c.dimensions[0], "1", "--aggregate"], { env });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /Cannot use --aggregate without --file/);
});

A.after(async () => {
  await sb.stop();
});
A.run();
