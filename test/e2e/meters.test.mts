// 2-emit-meter --meters against the sandbox, as a process, with both clocks moved (the script's
// through the test preload, the sandbox's through POST /clock) to a fixed instant: the first
// hours of a month. Hourly, daily and monthly charges from config.json; runs missed for 5 hours
// caught up; a gap longer than the window reported as Missed once; a rerun and two runners at
// once billing nothing twice (checked against the metering emulator's events and counters).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { CLOCK_PRELOAD, describe, runScript } from "../helpers/scripts.mts";
import { startFleet, type AcceptedEvent } from "../helpers/fleet.mts";

const HOUR = 3_600_000;
const { sb, env, dataDir, customers, events, counters } = await startFleet({ customers: 3, dimensions: 3 });
const [c0, c1] = customers;
const [HOURLY, DAILY, MONTHLY] = c0.dimensions;

// Virtual now: 01:30 UTC on the first day of next month, so the month's and the day's first
// hour (00:00) is inside the window, whatever the real date.
const real = new Date();
const T0 = Date.UTC(real.getUTCFullYear(), real.getUTCMonth() + 1, 1, 1, 30);
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
let virtualNow = T0;
const offset = () => virtualNow - Date.now();
async function moveTo(ms: number) {
  virtualNow = ms;
  await admin(sb, "POST", "/clock", { offsetMs: offset() });
}
const run = (args: string[] = []) =>
  runScript("2-emit-meter.mts", ["--meters", "--json", ...args], { preload: [CLOCK_PRELOAD], env: { ...env, METERING_TEST_CLOCK_OFFSET_MS: String(offset()) } });
const meteringCalls = async () => Object.values((await counters()).metering ?? {}).reduce((n, c) => n + c, 0);
const charged = async (dimension: string, resourceId?: string): Promise<AcceptedEvent[]> =>
  (await events()).filter((e) => e.dimension === dimension && (resourceId === undefined || e.resourceId === resourceId));
/** The hours (epoch ms) a customer was charged for a dimension, sorted; each must appear once. */
const hoursOf = async (dimension: string, resourceId: string) => (await charged(dimension, resourceId)).map((e) => Date.parse(e.effectiveStartTime)).sort((a, b) => a - b);
const range = (from: number, to: number) => Array.from({ length: (to - from) / HOUR + 1 }, (_, i) => from + i * HOUR);

const configPath = join(dataDir, "config.json");
const config = JSON.parse(await readFile(configPath, "utf8"));
config.meters = [
  { dimension: HOURLY, quantity: 1, every: "hour", customers: "all", from: iso(T0 - 90 * 60_000 - 5 * HOUR) },
  { dimension: DAILY, quantity: 3.5, every: "day", customers: [`${c1.subscriptionId}/${c1.managedResourceGroup}`], from: iso(T0 - 90 * 60_000) },
  { dimension: MONTHLY, quantity: 99, every: "month", customers: [`${c0.subscriptionId}/${c0.managedResourceGroup}`], from: iso(T0 - 70 * 24 * HOUR) },
];
await writeFile(configPath, JSON.stringify(config, null, 2));
await moveTo(T0);
const FIRST_HOURLY = T0 - 90 * 60_000 - 5 * HOUR; // 19:00 of the last day of the month
const MONTH_START = T0 - 90 * 60_000; // 00:00 on the 1st

const M = suite("2-emit-meter --meters");

M("the first run: every hourly charge since `from`, the daily and the monthly one at their first hour", async () => {
  const r = await run();
  assert.is(r.code, 0, describe(r));
  for (const c of customers) assert.equal(await hoursOf(HOURLY, c.resourceUsageId), range(FIRST_HOURLY, MONTH_START + HOUR), c.managedResourceGroup);
  assert.equal((await charged(DAILY)).map((e) => [e.resourceId, e.effectiveStartTime, e.quantity]), [[c1.resourceUsageId, iso(MONTH_START), 3.5]]);
  assert.equal((await charged(MONTHLY)).map((e) => [e.resourceId, e.effectiveStartTime, e.quantity]), [[c0.resourceUsageId, iso(MONTH_START), 99]]);
  assert.equal(JSON.parse(r.stdout).counts, { Accepted: 3 * 7 + 2 });
});

M("run again at once: nothing is due, nothing is sent, exit 0", async () => {
  const before = await meteringCalls();
  const r = await run();
  assert.is(r.code, 0, describe(r));
  assert.equal(JSON.parse(r.stdout).counts, {});
  assert.is(await meteringCalls(), before);
});

M("runs missed for 5 hours: the next run bills each of those hours once", async () => {
  await moveTo(T0 + 5 * HOUR);
  const r = await run();
  assert.is(r.code, 0, describe(r));
  assert.equal(JSON.parse(r.stdout).counts, { Accepted: 3 * 5 });
  for (const c of customers) assert.equal(await hoursOf(HOURLY, c.resourceUsageId), range(FIRST_HOURLY, MONTH_START + 6 * HOUR), c.managedResourceGroup);
});

M("a gap longer than the window: the hours still inside it are billed, the ones that left it reported Missed, once (exit 1, then 0)", async () => {
  // Last charged hour: 06:00 on the 1st. Now: 12:30 on the 2nd: 13:00 on the 1st is the oldest hour the API still takes.
  await moveTo(MONTH_START + 36 * HOUR + 30 * 60_000);
  const r = await run();
  assert.is(r.code, 1, describe(r));
  const report = JSON.parse(r.stdout);
  const missed = report.events.filter((e: { status: string }) => e.status === "Missed");
  assert.is(missed.length, 3 * 6, "07:00 to 12:00 on the 1st, for each customer");
  assert.match(missed[0].message, /no run billed this hourly charge while its hour was in the API's 24-hour window; 1 .* is lost/);
  assert.equal(report.counts, { Missed: 18, Accepted: 3 * 24 + 1 }, "13:00 on the 1st to 12:00 on the 2nd, and the daily charge of the 2nd");
  for (const c of customers) {
    const hours = await hoursOf(HOURLY, c.resourceUsageId);
    assert.equal(hours, [...range(FIRST_HOURLY, MONTH_START + 6 * HOUR), ...range(MONTH_START + 13 * HOUR, MONTH_START + 36 * HOUR)]);
  }
  assert.equal((await charged(DAILY)).map((e) => e.effectiveStartTime), [iso(MONTH_START), iso(MONTH_START + 24 * HOUR)]);

  const again = await run();
  assert.is(again.code, 0, describe(again));
  assert.equal(JSON.parse(again.stdout).counts, {}, "a missed charge is reported once");
});

M("two runners at once over --meters: each due charge billed once", async () => {
  await moveTo(virtualNow + HOUR);
  const before = (await charged(HOURLY)).length;
  const [a, b] = await Promise.all([run(), run()]);
  assert.is(a.code, 0, describe(a));
  assert.is(b.code, 0, describe(b));
  const counts = [JSON.parse(a.stdout).counts, JSON.parse(b.stdout).counts];
  assert.equal(counts.map((c) => c.Accepted ?? 0).sort(), [0, 3], JSON.stringify(counts));
  assert.is((await charged(HOURLY)).length, before + 3);
});

M("bad meters in config.json: one line naming the entry and field, exit 2, nothing sent", async () => {
  const before = await meteringCalls();
  const saved = await readFile(configPath, "utf8");
  try {
    await writeFile(configPath, JSON.stringify({ ...config, meters: [{ dimension: HOURLY, quantity: 1, every: "week", from: iso(T0) }] }));
    const r = await run();
    assert.is(r.code, 2, describe(r));
    assert.match(r.stderr, /Cannot use config\.json meters\[0\]: every must be "hour", "day" or "month", not "week"/);
  } finally {
    await writeFile(configPath, saved);
  }
  assert.is(await meteringCalls(), before);
});

M.after(async () => {
  await sb.stop();
});
M.run();
