// The blob ledger store (lib/audit/blob-store.mts) against Azurite, through @azure/storage-blob
// with the ISV's bearer token: writers with append blobs of their own, conditional appends, day
// folders, merged and incremental scans, and the run lock as a blob lease (wait, refuse, hand
// over, take over from a dead process, notice a lost lease). Checked in the container itself.
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BlobServiceClient } from "@azure/storage-blob";
import { blobLedgerStore } from "../../lib/audit/blob-store.mts";
import type { AuditRecord } from "../../lib/audit/log.mts";
import type { AuditEntry } from "../../lib/audit/records.mts";
import { RunLockedError } from "../../lib/core/errors.mts";
import { isvCredential } from "../helpers/realclients.mts";
import { startTestSandbox } from "../helpers/sandbox.mts";

const sb = await startTestSandbox();
const credential = isvCredential(sb);
const blobEndpoint = `${sb.endpoints.blob}/`;
const service = new BlobServiceClient(blobEndpoint, credential);
const DAY = 86_400_000;
const entry = (o: Record<string, unknown>) => ({ operation: "test", ...o }) as unknown as AuditEntry;
const store = (o: { prefix?: string; now?: () => number; leaseSeconds?: number } = {}) =>
  blobLedgerStore({ blobEndpoint, container: "ledger", prefix: o.prefix ?? `${randomUUID()}/`, credential, ...o });
async function scanAll(s: ReturnType<typeof store>, o: { sinceMs?: number } = {}) {
  const seen: AuditRecord[] = [];
  const r = await s.scan({ onRecord: (x) => seen.push(x), ...o });
  return { ...r, seen };
}
async function blobsUnder(prefix: string) {
  const out: Array<{ name: string; type?: string; length?: number }> = [];
  for await (const b of service.getContainerClient("ledger").listBlobsFlat({ prefix })) out.push({ name: b.name, type: b.properties.blobType, length: b.properties.contentLength });
  return out;
}

const W = suite("blob ledger: writers and scans");

W("a writer creates the container and one append blob of its own under log/<UTC day>/; records come back in order", async () => {
  const prefix = `${randomUUID()}/`;
  const s = store({ prefix });
  const w = await s.createWriter();
  await Promise.all([1, 2, 3].map((i) => w.append(entry({ id: String(i) }))));
  await w.append(entry({ id: "4" }));
  await w.close();
  const blobs = await blobsUnder(prefix);
  assert.is(blobs.length, 1);
  assert.match(blobs[0].name, new RegExp(`^${prefix}log/\\d{4}-\\d{2}-\\d{2}/.+-1\\.jsonl$`));
  assert.is(blobs[0].type, "AppendBlob");
  const { seen, records, invalidLines } = await scanAll(s);
  assert.equal(seen.map((r) => r.id), ["1", "2", "3", "4"]);
  assert.equal([records, invalidLines], [4, 0]);
  // Group commit: the three appends of one turn went out as one Append Block.
  assert.is(w.stats().writes, 2);
});

W("two writers at once each append to their own blob; a scan merges them by time", async () => {
  const s = store();
  const [a, b] = [await s.createWriter(), await s.createWriter()];
  for (let i = 0; i < 5; i++) {
    await a.append(entry({ id: `a${i}` }));
    await new Promise((r) => setTimeout(r, 3));
    await b.append(entry({ id: `b${i}` }));
    await new Promise((r) => setTimeout(r, 3));
  }
  await Promise.all([a.close(), b.close()]);
  const { seen } = await scanAll(s);
  assert.equal(seen.map((r) => r.id), ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]);
});

W("a rescan from the cursor passes on only what was written since", async () => {
  const s = store();
  const w = await s.createWriter();
  await w.append(entry({ id: "1" }));
  const first = await scanAll(s);
  await w.append(entry({ id: "2" }));
  const other = await s.createWriter();
  await other.append(entry({ id: "3" }));
  const seen: unknown[] = [];
  const second = await s.scan({ onRecord: (r) => seen.push(r.id), after: first.cursor });
  assert.equal(seen, ["2", "3"]);
  const third = await s.scan({ onRecord: (r) => seen.push(r.id), after: second.cursor });
  assert.is(third.records, 0);
  await Promise.all([w.close(), other.close()]);
});

W("a new UTC day starts a new blob; sinceMs reads only the day folders that can hold newer records", async () => {
  let now = Date.parse("2026-11-20T23:59:00Z");
  const prefix = `${randomUUID()}/`;
  const s = store({ prefix, now: () => now });
  const w = await s.createWriter();
  await w.append(entry({ id: "old" }));
  now += 10 * DAY;
  await w.append(entry({ id: "new" }));
  await w.close();
  const days = (await blobsUnder(prefix)).map((b) => b.name.split("/")[2]);
  assert.equal(days, ["2026-11-20", "2026-11-30"]);
  assert.equal((await scanAll(s)).seen.map((r) => r.id), ["old", "new"]);
  assert.equal((await scanAll(s, { sinceMs: now - DAY })).seen.map((r) => r.id), ["new"]);
});

W("a missing container has no records", async () => {
  const s = blobLedgerStore({ blobEndpoint, container: `absent${Date.now()}`, prefix: "", credential });
  assert.equal((await scanAll(s)).records, 0);
});
W.run();

const L = suite("blob ledger: the run lock is a lease");

L("one holder at a time: a second run with no wait is refused naming the holder; after release it takes the lease", async () => {
  const s = store();
  const first = await s.acquireLock({ name: "emit" });
  try {
    await s.acquireLock({ name: "emit", waitMs: 0 });
    assert.unreachable("second holder");
  } catch (error) {
    assert.instance(error, RunLockedError);
    assert.match((error as Error).message, new RegExp(`process ${process.pid} on .* holds the lease on .*locks/emit\\.lock`));
  }
  const other = await s.acquireLock({ name: "shard-1-of-2", waitMs: 0 });
  await other.release();
  await first.release();
  const second = await s.acquireLock({ name: "emit", waitMs: 0 });
  assert.is(second.lost(), undefined);
  await second.release();
});

L("a waiting run gets the lease as soon as the holder releases it, and is told once who it waits for", async () => {
  const s = store();
  const first = await s.acquireLock({});
  const told: unknown[] = [];
  const waiting = s.acquireLock({ waitMs: 20_000, pollMs: 50, onWait: (h) => told.push(h?.pid) });
  await new Promise((r) => setTimeout(r, 300));
  await first.release();
  const second = await waiting;
  assert.equal(told, [process.pid]);
  await second.release();
});

L("a lease named by a process of this host that is gone is taken over at once, not after it expires", async () => {
  const prefix = `${randomUUID()}/`;
  const s = store({ prefix });
  const dead = store({ prefix });
  const lock = await dead.acquireLock({});
  // Make its metadata name a process that has exited, as a SIGKILLed runner's would.
  const exited = spawnSync(process.execPath, ["-e", ""]).pid!;
  const blob = service.getContainerClient("ledger").getBlockBlobClient(`${prefix}locks/emit.lock`);
  const { metadata } = await blob.getProperties();
  await blob.setMetadata({ ...metadata, pid: String(exited) }, { conditions: { leaseId: metadata!.leaseid } });
  const t0 = performance.now();
  const taken = await s.acquireLock({ waitMs: 10_000 });
  assert.ok(performance.now() - t0 < 5_000, "taken over without waiting for the lease to expire");
  assert.is((await blob.getProperties()).metadata!.leaseid, taken.info.token);
  // The old holder finds out at its next renewal.
  void lock;
  await taken.release();
});

L("a holder whose lease was broken by someone else counts it as lost at its next renewal", async () => {
  const prefix = `${randomUUID()}/`;
  const s = store({ prefix, leaseSeconds: 15 });
  const lock = await s.acquireLock({});
  assert.is(lock.lost(), undefined);
  const blob = service.getContainerClient("ledger").getBlockBlobClient(`${prefix}locks/emit.lock`);
  await blob.getBlobLeaseClient().breakLease(0);
  await blob.getBlobLeaseClient(randomUUID()).acquireLease(15);
  // Renewals come every quarter of the lease (3.75 s here).
  const deadline = Date.now() + 15_000;
  while (!lock.lost() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.instance(lock.lost(), RunLockedError);
  assert.match(lock.lost()!.message, /Lost the lease on .*emit\.lock/);
  await lock.release();
});

L.after(async () => {
  await sb.stop();
});
L.run();
