// 2-emit-meter --file --aggregate against the sandbox, as a process: raw usage records (many
// per hour, at any instant, out of order, customers in any case) summed into one event per
// customer, dimension and UTC hour, with sums the metering emulator receives exactly equal to
// the raw sums (decimal, not floating-point); a rerun bills nothing twice; a sum above the
// ceiling refused before anything is sent.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";
import { hourBack, isoHour } from "../helpers/hours.mts";

const { sb, env, dataDir, customers, events, counters } = await startFleet({ customers: 8, dimensions: 4 });
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
