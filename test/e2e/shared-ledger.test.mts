// The ledger in Azure Storage (Azurite, through the sandbox's own sign-in) and many runners at
// once: 2-emit-meter as processes with METERING_LEDGER=blob:…, one runner, four runners with
// --shards over the same file, and runners SIGKILLed at random moments, each replaced by a new
// one. Checked against the metering emulator's accepted events and the ledger read back from
// the container: every event exactly once, and no shard ever sent by two runners at a time.
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";
import { loadLedger } from "../../lib/metering/submission.mts";
import { shardLockName, shardOf } from "../../lib/metering/shards.mts";
import { startFleet } from "../helpers/fleet.mts";
import { isvCredential } from "../helpers/realclients.mts";
import { describe, runScript, type RunResult } from "../helpers/scripts.mts";

const { sb, env, auditPath, customers, events } = await startFleet({ customers: 40, dimensions: 25 });
const filesDir = await mkdtemp(join(tmpdir(), "metering-shared-"));
const HOUR = 3_600_000;
const baseHour = Math.floor(Date.now() / HOUR) * HOUR;
let ledgers = 0;

/** A fresh ledger (its own prefix in the `ledger` container) and the env that names it. */
function newLedger() {
  const prefix = `run-${++ledgers}/`;
  const store = blobLedgerStore({ blobEndpoint: `${sb.endpoints.blob}/`, container: "ledger", prefix, credential: isvCredential(sb) });
  return { store, env: { ...env, METERING_LEDGER: `blob:${sb.endpoints.blob}/ledger/${prefix}` } };
}

/** Usage for `hoursBack` hours ago for `n` customers from the `from`th (all 25 dimensions each), and what it intends. */
async function usageFile(hoursBack: number, n = customers.length, from = 0) {
  const t = new Date(baseHour - hoursBack * HOUR).toISOString().replace(".000Z", "Z");
  const intended = new Map<string, number>();
  const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
  customers.slice(from, from + n).forEach((c, ci) => c.dimensions.forEach((d, di) => {
    const q = ((hoursBack * 7 + ci * 3 + di) % 50) + 1;
    intended.set(`${c.resourceUsageId}|${d}`, q);
    lines.push(`${c.subscriptionId},${c.managedResourceGroup},${d},${q},${t}`);
  }));
  const file = join(filesDir, `usage-${hoursBack}-${from}.csv`);
  await writeFile(file, `${lines.join("\n")}\n`);
  return { t, intended, file };
}

/** The emulator's events of hour `t`, checked against `intended`: each exactly once, with its quantity. */
async function assertExactlyOnce(t: string, intended: Map<string, number>, label: string) {
  const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === Date.parse(t));
  const seen = new Map<string, number>();
  for (const e of evs) {
    const k = `${e.resourceId}|${e.dimension}`;
    assert.not.ok(seen.has(k), `${label}: ${k} billed twice`);
    seen.set(k, e.quantity);
  }
  assert.is(seen.size, intended.size, `${label}: ${seen.size} of ${intended.size} events billed`);
  for (const [k, q] of intended) assert.is(seen.get(k), q, `${label}: ${k}`);
}

async function recordsOf(store: ReturnType<typeof newLedger>["store"]): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  await store.scan({ onRecord: (r) => out.push(r) });
  return out;
}

/**
 * No two holders of one lock overlapped: per lock name, the holders' intents (by token) span
 * disjoint time ranges; and every customer's intents name the lock of its own shard.
 */
function assertOneHolderAtATime(records: AuditRecord[], shards: number) {
  const spans = new Map<string, Map<string, [number, number]>>();
  for (const r of records) {
    if (!r.operation.endsWith(".intent")) continue;
    const lock = r.lock as { name: string; token: string } | undefined;
    assert.ok(lock, `intent ${r.id} names its lock`);
    const c = r.customer!;
    if (shards > 1) assert.is(lock.name, shardLockName(shardOf(c, shards), shards), `${c.managedResourceGroup} sent under its own shard's lease`);
    const byToken = spans.get(lock.name) ?? spans.set(lock.name, new Map()).get(lock.name)!;
    const t = Date.parse(r.time);
    const span = byToken.get(lock.token);
    byToken.set(lock.token, span ? [Math.min(span[0], t), Math.max(span[1], t)] : [t, t]);
  }
  for (const [name, byToken] of spans) {
    const sorted = [...byToken.values()].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i][0] >= sorted[i - 1][1], `${name}: two holders sent at the same time`);
  }
  return spans;
}

const S = suite("a shared ledger in blob storage");

S("one runner: every event once; the ledger is in the container (nothing in audit.jsonl); a rerun sends nothing", async () => {
  const { store, env: e } = newLedger();
  const { t, intended, file } = await usageFile(1, 8);
  const r = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env: e, timeoutMs: 300_000 });
  assert.is(r.code, 0, describe(r));
  await assertExactlyOnce(t, intended, "first run");
  const { ledger } = await loadLedger({ store });
  assert.is([...ledger.entries.values()].filter((x) => x.state === "accepted" && x.event.effectiveStartTime === t).length, intended.size);
  assert.is(await stat(auditPath).then((s) => s.size, () => 0), 0, "audit.jsonl not written");
  const again = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env: e, timeoutMs: 300_000 });
  assert.is(again.code, 0, describe(again));
  assert.equal(JSON.parse(again.stdout).counts, { Accepted: intended.size }, "settled from the ledger, not sent");
  await assertExactlyOnce(t, intended, "rerun");
});

S("moving over: a run with the local file ledger, then 0-ledger import (twice: the second copies nothing); the blob ledger then knows those events", async () => {
  const { store, env: e } = newLedger();
  const { t, intended, file } = await usageFile(1, 16, 8);
  const local = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env, timeoutMs: 300_000 });
  assert.is(local.code, 0, describe(local));
  const fileRecords = (await loadLedger({ auditPath })).ledger;
  const imported = await runScript("0-ledger.mts", ["import", "--json"], { env: e });
  assert.is(imported.code, 0, describe(imported));
  const first = JSON.parse(imported.stdout);
  assert.ok(first.imported > 0 && first.present === 0 && first.invalid === 0, imported.stdout);
  const again = await runScript("0-ledger.mts", ["import", "--json"], { env: e });
  assert.is(again.code, 0, describe(again));
  assert.equal([JSON.parse(again.stdout).imported, JSON.parse(again.stdout).present], [0, first.imported]);
  const { ledger } = await loadLedger({ store });
  assert.equal([...ledger.entries.keys()].sort(), [...fileRecords.entries.keys()].sort());
  // A run against the blob ledger settles those hours from the imported records: nothing sent.
  const before = (await events()).length;
  const run = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env: e, timeoutMs: 300_000 });
  assert.is(run.code, 0, describe(run));
  assert.is((await events()).length, before);
  await assertExactlyOnce(t, intended, "after the import");
  const noBlob = await runScript("0-ledger.mts", ["import"], { env });
  assert.is(noBlob.code, 2);
  assert.match(noBlob.stderr, /Cannot import: the configured ledger is the local file already/);
});

S("four runners at once with --shards 8 over one file: every event once, each shard under one lease at a time", async () => {
  const { store, env: e } = newLedger();
  const { t, intended, file } = await usageFile(2);
  const runs = await Promise.all(Array.from({ length: 4 }, () => runScript("2-emit-meter.mts", ["--file", file, "--shards", "8", "--json"], { env: e, timeoutMs: 300_000 })));
  for (const r of runs) assert.is(r.code, 0, describe(r));
  await assertExactlyOnce(t, intended, "four runners");
  const spans = assertOneHolderAtATime(await recordsOf(store), 8);
  assert.is(spans.size, 8, "every shard was sent");
  // Each event was sent by exactly one runner.
  const sent = runs.map((r) => Object.values(JSON.parse(r.stdout).counts as Record<string, number>).reduce((a, b) => a + b, 0));
  assert.ok(sent.filter((n) => n > 0).length >= 2, `the work was shared: ${sent}`);
});

// 21 rounds (hours 3..23 back, inside the window), of which at least 20 must kill a runner before it ends.
const ROUNDS = 21;
const MIN_KILLS = 20;
S("runners SIGKILLed at random moments, 20 times in a row, each replaced by a new one: exactly the intended events", async () => {
  const { store, env: e } = newLedger();
  let kills = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const { t, intended, file } = await usageFile(3 + round);
    const start = () => runScript("2-emit-meter.mts", ["--file", file, "--shards", "8", "--json"], { env: e, timeoutMs: 300_000 });
    // Four runners; one (at random) is killed once the ledger has grown by a random amount.
    const victim = Math.floor(Math.random() * 4);
    // Counted incrementally (a scan from the last cursor reads only the new bytes).
    let cursor = (await store.scan({ onRecord: () => {} })).cursor;
    let grown = 0;
    const target = 2 + Math.floor(Math.random() * 60);
    const runs: Array<Promise<RunResult>> = Array.from({ length: 4 }, (_, i) => i !== victim ? start() : runScript("2-emit-meter.mts", ["--file", file, "--shards", "8", "--json"], {
      env: e, timeoutMs: 300_000,
      killWhen: async () => {
        const r = await store.scan({ onRecord: () => void grown++, after: cursor });
        cursor = r.cursor;
        await new Promise((res) => setTimeout(res, 20));
        return grown >= target;
      },
    }));
    const killed = await runs[victim];
    if (killed.code === null) kills++;
    // The replacement, started after the kill.
    runs.push(start());
    const results = await Promise.all(runs);
    results.forEach((r, i) => i !== victim && assert.is(r.code, 0, `round ${round}, runner ${i}: ${describe(r)}`));
    await assertExactlyOnce(t, intended, `round ${round} (killed after ${grown} new records)`);
  }
  assert.ok(kills >= MIN_KILLS, `at least ${MIN_KILLS} of ${ROUNDS} kills landed before the runner ended (${kills})`);
  const records = await recordsOf(store);
  assertOneHolderAtATime(records, 8);
  const { ledger } = await loadLedger({ store, unresolved: true });
  assert.is(ledger.unresolved().length, 0, "nothing left open");
});

S.after(async () => {
  await rm(filesDir, { recursive: true, force: true });
  await sb.stop();
});
S.run();
