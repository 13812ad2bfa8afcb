// 2-emit-meter --file as a process against connection faults that cut the TCP connection of
// the batchUsageEvent call: a reset that lasts through every retry (the audit log records the
// network error, never an HTTP status; the next run sends the events and they are accepted), a
// drop that lasts through every retry (the API accepted the events; the next run's Duplicate
// settles them), and drops at a rate over 300 events of 10 customers, run again until it
// exits 0. The metering emulator then holds each intended event once, and nothing else. The
// sandbox runs in this test process and the script in a child, both on the runtime under test.
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript, type RunResult } from "../helpers/scripts.mts";
import { startFleet, type AcceptedEvent, type FleetCustomer } from "../helpers/fleet.mts";
import { hourBack } from "../helpers/hours.mts";
import { DEFAULT_RETRY_OPTIONS } from "../../lib/core/http.mts";
import { loadLedger } from "../../lib/metering/submission.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";

// 10 customers of 30 dimensions: 300 events an hour, two batch calls (25 + 5) per customer.
// A cut connection fails at once; an attempt that hangs instead fails after 3 s (ETIMEDOUT).
const fleet = await startFleet({
  customers: 10, dimensions: 30, env: { METERING_HTTP_TRY_TIMEOUT_MS: "3000" },
});
const { sb, customers, events, counters } = fleet;
const BATCH = { service: "metering", method: "POST", route: "/api/batchUsageEvent" };
const TRIES = (DEFAULT_RETRY_OPTIONS.maxRetries ?? 3) + 1;
/** What a client reports when the connection is cut under it: Node `read ECONNRESET`, Deno `socket hang up` (code ECONNRESET). */
const NETWORK_ERROR_RE = /Cannot reach the metering API at \S+: ECONNRESET /;

const keyOf = (e: { resourceId: string; dimension: string; effectiveStartTime: string }) => `${e.resourceId}|${e.dimension}|${Date.parse(e.effectiveStartTime)}`;
/** Every event this file means to bill, by key: its quantity. */
const intended = new Map<string, number>();

const workspaces: string[] = [];

type Row = { c: FleetCustomer; dimension: string; quantity: number; effectiveStartTime: string };

/**
 * The rows of one UTC hour, `hoursAgo` hours before the hour this file started in. Their times
 * are written out, so that a rerun after the hour turned still sends the same events, and two
 * tests of the file never meet in one hour because the clock moved between them.
 */
function rowsOf(picks: Array<{ c: FleetCustomer; dimension: string; quantity: number }>, hoursAgo: number): Row[] {
  const effectiveStartTime = new Date(hourBack(hoursAgo)).toISOString();
  return picks.map((p) => {
    intended.set(keyOf({ resourceId: p.c.resourceUsageId, dimension: p.dimension, effectiveStartTime }), p.quantity);
    return { ...p, effectiveStartTime };
  });
}

/** A usage file's text: one CSV row per event. */
function csvOf(rows: Row[]): string {
  const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
  for (const r of rows) lines.push(`${r.c.subscriptionId},${r.c.managedResourceGroup},${r.dimension},${r.quantity},${r.effectiveStartTime}`);
  return `${lines.join("\n")}\n`;
}

/**
 * A data directory of its own for one test (the fleet's config, an empty audit log), so that
 * what one test leaves open is not sent again by the next; the usage file `csv` in it, the
 * environment that points the script at it, and its audit records.
 */
async function workspace(csv: string) {
  const dataDir = await mkdtemp(join(fleet.dataDir, "..", "metering-data-"));
  workspaces.push(dataDir);
  await copyFile(join(fleet.dataDir, "config.json"), join(dataDir, "config.json"));
  const file = join(dataDir, "usage.csv");
  await writeFile(file, csv);
  const auditPath = join(dataDir, "audit.jsonl");
  const records = async (): Promise<AuditRecord[]> =>
    (await readFile(auditPath, "utf8").catch(() => "")).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as AuditRecord);
  return {
    file, auditPath,
    env: { ...fleet.env, METERING_DATA_DIR: dataDir },
    /** The outcome records (not intents) of batch calls. */
    batchOutcomes: async () => (await records()).filter((r) => r.operation === "batchUsageEvent"),
  };
}

const batchCalls = async () => (await counters()).metering?.["POST /api/batchUsageEvent"] ?? 0;

/** The `counts` of a `--json` run's report. */
function reportOf(r: RunResult): { counts: Record<string, number>; events: Array<{ status: string; message?: string }> } {
  let report;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    // asserted below
  }
  assert.ok(report?.counts && report?.events, `no JSON report on stdout\n${describe(r)}`);
  return report;
}
const countsOf = (r: RunResult): Record<string, number> => reportOf(r).counts;

const N = suite("2-emit-meter: connections cut by the sandbox");

N("a reset on every try: exit 1, nothing billed, the audit log records ECONNRESET and no HTTP status; the next run bills the events once", async () => {
  const [c] = customers;
  const rows = rowsOf(c.dimensions.slice(0, 2).map((dimension, i) => ({ c, dimension, quantity: 7 + i })), 2);
  const w = await workspace(csvOf(rows));
  await admin(sb, "DELETE", "/requests");
  await admin(sb, "POST", "/faults", { ...BATCH, kind: "reset", times: -1 });
  let r: RunResult;
  try {
    r = await runScript("2-emit-meter.mts", ["--file", w.file], { env: w.env });
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
  // What the user reads: each event unconfirmed because the API could not be reached, no HTTP status.
  assert.is(r.code, 1, describe(r));
  assert.match(r.stdout, /^Unconfirmed\s+2$/m, describe(r));
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("Unconfirmed: "));
  assert.is(lines.length, 2, describe(r));
  for (const line of lines) assert.match(line, NETWORK_ERROR_RE);
  assert.not.match(r.stderr, /HTTP \d{3}/, describe(r));
  assert.is(await batchCalls(), TRIES, "every try reached the sandbox and was reset");
  assert.equal((await events()).filter((e) => e.resourceId === c.resourceUsageId), [], "a reset comes before the API processes anything");
  const outcomes = await w.batchOutcomes();
  assert.is(outcomes.length, 1, JSON.stringify(outcomes));
  const [outcome] = outcomes;
  assert.is(outcome.response, undefined, `the client saw an HTTP status: ${JSON.stringify(outcome.response)}`);
  assert.match(String((outcome.error as { message?: string } | undefined)?.message), NETWORK_ERROR_RE, JSON.stringify(outcome));
  assert.equal((outcome.events as Array<{ status: string }>).map((e) => e.status), ["Unconfirmed", "Unconfirmed"]);

  // The events stay open; the next run sends them, and since the API never saw them they are accepted.
  const again = await runScript("2-emit-meter.mts", ["--resend", "--json"], { env: w.env });
  assert.is(again.code, 0, describe(again));
  assert.equal(countsOf(again), { Accepted: 2 });
});

N("a drop on every try: exit 1, yet the API holds the events; the audit log records ECONNRESET; the next run's Duplicate settles them", async () => {
  const c = customers[1];
  const rows = rowsOf(c.dimensions.slice(0, 2).map((dimension, i) => ({ c, dimension, quantity: 4 + i })), 2);
  const w = await workspace(csvOf(rows));
  await admin(sb, "DELETE", "/requests");
  await admin(sb, "POST", "/faults", { ...BATCH, kind: "drop", times: -1 });
  let r: RunResult;
  try {
    r = await runScript("2-emit-meter.mts", ["--file", w.file, "--json"], { env: w.env });
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
  assert.is(r.code, 1, describe(r));
  const report = reportOf(r);
  assert.equal(report.counts, { Unconfirmed: 2 }, describe(r));
  for (const e of report.events) assert.match(String(e.message), NETWORK_ERROR_RE);
  assert.is(await batchCalls(), TRIES);
  const held = (await events()).filter((e) => e.resourceId === c.resourceUsageId);
  assert.equal(held.map((e) => [e.dimension, e.quantity]), rows.map((row) => [row.dimension, row.quantity]), "the first try was processed in full");
  const outcomes = await w.batchOutcomes();
  assert.is(outcomes.length, 1, JSON.stringify(outcomes));
  const [outcome] = outcomes;
  assert.is(outcome.response, undefined, `the client saw an HTTP status: ${JSON.stringify(outcome.response)}`);
  assert.match(String((outcome.error as { message?: string } | undefined)?.message), NETWORK_ERROR_RE, JSON.stringify(outcome));

  const again = await runScript("2-emit-meter.mts", ["--resend", "--json"], { env: w.env });
  assert.is(again.code, 0, describe(again));
  assert.equal(countsOf(again), { Duplicate: 2 });
});

N("300 events of 10 customers, 30% of batch calls accepted and then dropped: rerun until exit 0; the API holds each intended event once, nothing else", async () => {
  const rows = rowsOf(customers.flatMap((c, ci) => c.dimensions.map((dimension, di) => ({ c, dimension, quantity: 100 * ci + di + 1 }))), 3);
  assert.is(rows.length, 300);
  const w = await workspace(csvOf(rows));
  // The first batch call is always dropped, so that the test never passes without a drop.
  await admin(sb, "POST", "/faults", [{ ...BATCH, kind: "drop", times: 1 }, { ...BATCH, kind: "drop", rate: 0.3 }]);
  const totals: Record<string, number> = {};
  const runs: RunResult[] = [];
  try {
    for (let run = 0; run < 8; run++) {
      const r = await runScript("2-emit-meter.mts", ["--file", w.file, "--concurrency", "10", "--json"], { env: w.env });
      runs.push(r);
      assert.ok(r.code === 0 || r.code === 1, describe(r));
      const counts = countsOf(r);
      assert.is(Object.values(counts).reduce((a, n) => a + n, 0), 300, `one report per row: ${JSON.stringify(counts)}`);
      // Settled (now or by an earlier run), or open after a cut connection; never an HTTP failure.
      assert.equal(Object.keys(counts).filter((k) => !["Accepted", "Duplicate", "AlreadyAccepted", "Unconfirmed"].includes(k)), [], describe(r));
      for (const [status, n] of Object.entries(counts)) totals[status] = (totals[status] ?? 0) + n;
      if (r.code === 0) break;
    }
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
  assert.is(runs.at(-1)!.code, 0, `still failing after ${runs.length} runs\n${describe(runs.at(-1)!)}`);
  // A dropped call had been accepted: its retry (or the next run) learnt so from the API's Duplicate.
  assert.ok((totals.Duplicate ?? 0) > 0, JSON.stringify(totals));
  // Each event settled in exactly one run; later runs count it AlreadyAccepted and do not send it.
  assert.is((totals.Accepted ?? 0) + (totals.Duplicate ?? 0), 300, JSON.stringify(totals));
  // A call that failed for good failed on the network, never with an HTTP status.
  for (const rec of await w.batchOutcomes()) {
    if (rec.error) assert.match(String((rec.error as { message?: string }).message), NETWORK_ERROR_RE);
    else assert.ok(rec.response && rec.response.status < 500, JSON.stringify(rec.response));
  }
  const { ledger } = await loadLedger({ auditPath: w.auditPath });
  assert.is(ledger.unresolved().length, 0, "the audit log has an outcome for every intent");

  // The emulator holds exactly what this file meant to bill: each key once, with its quantity.
  const held = await events();
  assert.is(held.filter((e) => Date.parse(e.effectiveStartTime) === Date.parse(rows[0].effectiveStartTime)).length, 300);
  const byKey = new Map<string, AcceptedEvent[]>();
  for (const e of held) byKey.set(keyOf(e), [...(byKey.get(keyOf(e)) ?? []), e]);
  for (const [key, list] of byKey) {
    assert.ok(intended.has(key), `billed, never meant: ${JSON.stringify(list)}`);
    assert.is(list.length, 1, `${key} billed ${list.length} times`);
    assert.is(list[0].quantity, intended.get(key), key);
  }
});

N.after(async () => {
  await sb.stop();
  await Promise.all(workspaces.map((d) => rm(d, { recursive: true, force: true })));
});

N.run();
