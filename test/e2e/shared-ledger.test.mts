// The ledger in Azure Storage (Azurite, through the sandbox's own sign-in) and many runners at
// once: 2-emit-meter as processes with METERING_LEDGER=blob:…, one runner, four runners with
// --shards over the same file, and runners SIGKILLed at random moments, each replaced by a new
// one. Checked against the metering emulator's accepted events and the ledger read back from
// the container: every event exactly once, and no shard ever sent by two runners at a time.
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { BlobServiceClient } from "@azure/storage-blob";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";
import { loadLedger } from "../../lib/metering/submission.mts";
import { shardLockName, shardOf } from "../../lib/metering/shards.mts";
import { startFleet } from "../helpers/fleet.mts";
import { admin } from "../helpers/sandbox.mts";
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

/** The emulator's events of hour `t` for the intended customers, checked against `intended`: each exactly once, with its quantity. */
async function assertExactlyOnce(t: string, intended: Map<string, number>, label: string) {
  // Only the intended customers' events of that hour (tests share hours, never customers in one).
  const resources = new Set([...intended.keys()].map((k) => k.split("|")[0]));
  const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === Date.parse(t) && resources.has(e.resourceId));
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
  // (Setting up the fleet wrote its change records there.)
  const localBefore = await stat(auditPath).then((s) => s.size, () => 0);
  const r = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env: e, timeoutMs: 300_000 });
  assert.is(r.code, 0, describe(r));
  await assertExactlyOnce(t, intended, "first run");
  const { ledger } = await loadLedger({ store });
  assert.is([...ledger.entries.values()].filter((x) => x.state === "accepted" && x.event.effectiveStartTime === t).length, intended.size);
  assert.is(await stat(auditPath).then((s) => s.size, () => 0), localBefore, "audit.jsonl not written");
  const again = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env: e, timeoutMs: 300_000 });
  assert.is(again.code, 0, describe(again));
  assert.equal(JSON.parse(again.stdout).counts, { AlreadyAccepted: intended.size }, "settled from the ledger, not sent");
  await assertExactlyOnce(t, intended, "rerun");
});

S("moving over: a run with the local file ledger, then 0-ledger import (twice: the second copies nothing); the blob ledger then knows those events", async () => {
  const { store, env: e } = newLedger();
  const { t, intended, file } = await usageFile(0, 16, 8);
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
  // Customers' ids are new each fleet, so a shard of the 8 may hold none of the 40.
  const occupied = new Set(customers.map((c) => shardOf(c, 8))).size;
  assert.is(spans.size, occupied, "every shard that holds a customer was sent");
  // Each event was sent by exactly one runner.
  const sent = runs.map((r) => Object.values(JSON.parse(r.stdout).counts as Record<string, number>).reduce((a, b) => a + b, 0));
  assert.ok(sent.filter((n) => n > 0).length >= 2, `the work was shared: ${sent}`);
});

S("--from blob: the usage container's new files billed once by two runners; seen again skipped; changed refused; a new one billed", async () => {
  const { store, env: e } = newLedger();
  const usage = new BlobServiceClient(`${sb.endpoints.blob}/`, isvCredential(sb)).getContainerClient("usage");
  await usage.createIfNotExists();
  const put = async (name: string, text: string) => void await usage.getBlockBlobClient(name).upload(text, Buffer.byteLength(text));
  const a = await usageFile(0, 6, 24);
  const b = await usageFile(0, 6, 30);
  const text = async (f: string) => (await import("node:fs/promises")).readFile(f, "utf8");
  await put("in/2026-12-02T10.csv", await text(a.file));
  await put("in/2026-12-02T11.csv", await text(b.file));
  await put("in/notes.txt", "not usage");
  const run = () => runScript("2-emit-meter.mts", ["--from", "blob:usage/in/", "--shards", "4", "--json"], { env: e, timeoutMs: 300_000 });
  const [r1, r2] = await Promise.all([run(), run()]);
  for (const r of [r1, r2]) assert.is(r.code, 0, describe(r));
  await assertExactlyOnce(a.t, new Map([...a.intended, ...b.intended]), "two files, two runners");
  const marks = await Promise.all(["in/2026-12-02T10.csv", "in/2026-12-02T11.csv"].map((n) => store.fileMark(usage.getBlobClient(n).url)));
  assert.equal(marks.map((m) => m?.rows), [a.intended.size, b.intended.size]);
  assert.is((await recordsOf(store)).filter((r) => r.operation === "usage.file").length >= 2, true);

  const again = await run();
  assert.is(again.code, 0, describe(again));
  assert.equal(JSON.parse(again.stdout).files.map((f: { status: string }) => f.status), ["skipped", "skipped"]);
  assert.match(again.stderr, /Skipped https:\/\/.*in\/2026-12-02T10\.csv .*billed already/);

  const before = (await events()).length;
  await put("in/2026-12-02T11.csv", (await text(b.file)).replace(/,(\d+),(\d{4}-)/, (_m, q, y) => `,${Number(q) + 1},${y}`));
  const c = await usageFile(0, 4, 36);
  await put("in/2026-12-02T12.csv", await text(c.file));
  const changed = await run();
  assert.is(changed.code, 1, describe(changed));
  assert.match(changed.stderr, /Refused https:\/\/.*in\/2026-12-02T11\.csv: it changed since it was billed .*a usage file is billed once/);
  assert.equal(JSON.parse(changed.stdout).files.map((f: { status: string }) => f.status), ["skipped", "refused", "billed"]);
  assert.is((await events()).length, before + c.intended.size, "only the new file's events");
});

// Runners killed while the work is under way: the metering API answers each batch after a delay
// (a sandbox delay fault), so a round of 1,000 events lasts long enough for runners to be killed at
// random moments and replaced; rounds (hours 3, 4, …) go on until at least 20 kills have landed.
const MIN_KILLS = 20;
S("runners SIGKILLed at random moments, 20 times and more, each replaced by a new one: exactly the intended events", async () => {
  const { store, env: e } = newLedger();
  await admin(sb, "POST", "/faults", [{ service: "metering", method: "POST", route: "/api/batchUsageEvent", kind: "delay", delayMs: 1500, rate: 1 }]);
  let kills = 0;
  try {
    for (let round = 0; kills < MIN_KILLS; round++) {
      assert.ok(round < 10, `${kills} kills in 10 rounds`);
      const { t, intended, file } = await usageFile(3 + round);
      const runners: Array<{ kill: boolean; ended: boolean; result: Promise<RunResult> }> = [];
      const start = () => {
        const r = { kill: false, ended: false, result: undefined as unknown as Promise<RunResult> };
        r.result = runScript("2-emit-meter.mts", ["--file", file, "--shards", "8", "--concurrency", "2", "--json"], { env: e, timeoutMs: 300_000, killWhen: async () => r.kill });
        r.result.then(() => void (r.ended = true));
        runners.push(r);
      };
      for (let i = 0; i < 4; i++) start();
      // While runners are at work: kill one at random every 0.3 to 2 s, and start another.
      while (kills < MIN_KILLS) {
        await new Promise((res) => setTimeout(res, 300 + Math.random() * 1700));
        const live = runners.filter((r) => !r.ended && !r.kill);
        if (live.length === 0) break;
        const victim = live[Math.floor(Math.random() * live.length)];
        victim.kill = true;
        if ((await victim.result).code === null) kills++;
        start();
      }
      const results = await Promise.all(runners.map((r) => r.result));
      runners.forEach((r, i) => r.kill || assert.is(results[i].code, 0, `round ${round}, runner ${i}: ${describe(results[i])}`));
      await assertExactlyOnce(t, intended, `round ${round} (${kills} kills so far)`);
    }
  } finally {
    await admin(sb, "DELETE", "/faults");
  }
  assertOneHolderAtATime(await recordsOf(store), 8);
  const { ledger } = await loadLedger({ store, unresolved: true });
  assert.is(ledger.unresolved().length, 0, "nothing left open");
});

S.after(async () => {
  await rm(filesDir, { recursive: true, force: true });
  await sb.stop();
});
S.run();
