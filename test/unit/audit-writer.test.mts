import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { appendFile, readFile, stat, writeFile } from "node:fs/promises";
import { mountTmpfs } from "../helpers/tmpfs.mts";
import { join } from "node:path";
import { AUDIT_ORDER_SLACK_MS, createAuditWriter, scanAuditLog, type AuditRecord } from "../../lib/audit/log.mts";
import { AuditLeakError } from "../../lib/core/errors.mts";
import type { AuditEntry } from "../../lib/audit/records.mts";
import { buildClientAssertion } from "../../lib/identity/assertion.mts";
import { makeTestKey, tempDir } from "./_support.mts";
import { scanRecords } from "./_support.mts";

// The writer's rules hold for any record; these tests use bare ones.
const entry = (record: { operation: string; [key: string]: unknown }) => record as unknown as AuditEntry;

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    await fn(dir);
  } finally {
    await cleanup();
  }
}

const writer = suite("createAuditWriter()");
writer("creates the file 0600 in a new directory and stamps each record with the time", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "nested", "audit.jsonl");
    const w = await createAuditWriter({ path });
    const before = Date.now();
    await w.append(entry({ operation: "a", id: "1" }));
    await w.close();
    assert.is((await stat(path)).mode & 0o777, 0o600);
    const [record] = (await scanRecords(path)).records;
    assert.equal({ ...record, time: "" }, { time: "", operation: "a", id: "1" });
    assert.ok(Date.parse(record.time) >= before - 1 && Date.parse(record.time) <= Date.now());
  });
});
writer("appends concurrent calls in call order, one line each", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    await Promise.all(Array.from({ length: 40 }, (_, i) => w.append(entry({ operation: `op${i}`, pad: "x".repeat(i * 300) }))));
    await w.close();
    const text = await readFile(path, "utf8");
    const lines = text.split("\n");
    assert.is(lines.pop(), "", "ends with a newline");
    assert.is(lines.length, 40);
    assert.equal(lines.map((l) => (JSON.parse(l) as AuditRecord).operation), Array.from({ length: 40 }, (_, i) => `op${i}`));
  });
});
writer("appends to what is there and drops Authorization from request headers", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    await writeFile(path, '{"time":"t0","operation":"old"}\n');
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "new", request: { method: "POST", url: "u", headers: { Authorization: "x", "X-Ms-RequestId": "r" }, body: null } }));
    await w.close();
    const { records, invalidLines } = await scanRecords(path);
    assert.is(invalidLines, 0);
    assert.equal(records.map((r) => r.operation), ["old", "new"]);
    assert.equal(records[1].request!.headers, { "x-ms-requestid": "r" });
  });
});
writer("closes a torn last line with a newline before its first record", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    await writeFile(path, '{"time":"t0","operation":"a"}\n{"time":"t1","oper');
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "b" }));
    await w.append(entry({ operation: "c" }));
    await w.close();
    const text = await readFile(path, "utf8");
    assert.match(text, /^\{"time":"t0","operation":"a"\}\n\{"time":"t1","oper\n\{"time":"[^"]+","operation":"b"\}\n\{"time":"[^"]+","operation":"c"\}\n$/);
    const log = await scanRecords(path);
    assert.equal(log.records.map((r) => r.operation), ["a", "b", "c"]);
    assert.is(log.invalidLines, 1, "the torn line is skipped, not lost with what follows");
  });
});
writer("a leak is a rejected promise, not a synchronous throw, so .catch() sees it", async () => {
  await inTemp(async (dir) => {
    const key = await makeTestKey();
    const jwt = await buildClientAssertion({ issuer: "https://i.example/x", subject: "s", signer: key.signer });
    const w = await createAuditWriter({ path: join(dir, "audit.jsonl") });
    let caught: unknown;
    await w.append(entry({ operation: "leaky", note: jwt })).catch((e) => (caught = e));
    assert.instance(caught, AuditLeakError);
    await w.close();
  });
});
writer("refuses a record holding a JWT with AuditLeakError, writes nothing for it, and keeps working", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const key = await makeTestKey();
    const jwt = await buildClientAssertion({ issuer: "https://i.example/x", subject: "s", signer: key.signer });
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "first" }));
    try {
      await w.append(entry({ operation: "leaky", response: { status: 200, body: { echoed: jwt } } }));
      assert.unreachable();
    } catch (error) {
      assert.instance(error, AuditLeakError);
      assert.is((error as AuditLeakError).code, "ERR_AUDIT_LEAK");
      assert.match((error as Error).message, /^Cannot write audit record leaky: .*\$\.response\.body\.echoed/);
      assert.not.match((error as Error).message, /eyJ/);
    }
    await w.append(entry({ operation: "after" }));
    await w.close();
    const text = await readFile(path, "utf8");
    assert.not.match(text, /eyJ/);
    assert.equal((await scanRecords(path)).records.map((r) => r.operation), ["first", "after"]);
  });
});
writer("rejects an append after close, and close twice is harmless", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "a" }));
    await w.close();
    await w.close();
    try {
      await w.append(entry({ operation: "late" }));
      assert.unreachable();
    } catch (error) {
      assert.is((error as Error).message, "Cannot append to the audit log: the writer is closed");
    }
    assert.equal((await scanRecords(path)).records.map((r) => r.operation), ["a"]);
  });
});
writer("group commit: appends made while a write is under way share the next write and fsync; each resolves only once its line is on disk", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    const onDiskAtResolve: boolean[] = [];
    await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      // Staggered: some in the first turn, the rest while earlier writes are under way.
      if (i % 2) await new Promise((r) => setTimeout(r, i % 7));
      await w.append(entry({ operation: `op${i}` }));
      onDiskAtResolve.push(readFileSync(path, "utf8").includes(`"operation":"op${i}"}`));
    }));
    const stats = w.stats();
    await w.close();
    assert.ok(onDiskAtResolve.length === 50 && onDiskAtResolve.every(Boolean), "every append resolved after its line was written");
    assert.is(stats.records, 50);
    assert.ok(stats.writes >= 1 && stats.writes < 50, `${stats.writes} writes for 50 records`);
    assert.is(stats.bytes, (await stat(path)).size);
    const { records, invalidLines } = await scanRecords(path);
    assert.is(invalidLines, 0);
    assert.equal(new Set(records.map((r) => r.operation)).size, 50);
  });
});
writer("group commit: a write that fails rejects every append of its group and every later one", async () => {
  const fs = await mountTmpfs(1024 * 1024);
  if ("skip" in fs) {
    console.log(`  skipped: ${fs.skip}`);
    return;
  }
  try {
    const path = join(fs.dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "first" }));
    await fs.fillLeaving(4096);
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => w.append(entry({ operation: `op${i}`, pad: "x".repeat(1000) }))));
    assert.ok(results.every((r) => r.status === "rejected" && (r.reason as Error).name === "AuditWriteError"), JSON.stringify(results.map((r) => r.status)));
    await fs.unfill();
    try {
      await w.append(entry({ operation: "later" }));
      assert.unreachable("an append after a failed write was accepted");
    } catch (error) {
      assert.is((error as Error).name, "AuditWriteError");
    }
    await w.close();
    const { records } = await scanRecords(path);
    assert.equal(records.map((r) => r.operation).filter((op) => op === "first" || op === "later"), ["first"]);
  } finally {
    await fs.unmount();
  }
});
writer("close waits for appends still in flight", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    const pending = Array.from({ length: 10 }, (_, i) => w.append(entry({ operation: `op${i}` })));
    await w.close();
    await Promise.all(pending);
    assert.is((await scanRecords(path)).records.length, 10);
  });
});
writer.run();

const scan = suite("scanAuditLog()");
scan("streams records in order, skipping blank lines and counting lines that are not objects", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    await writeFile(path, '{"time":"1","operation":"a"}\n\n   \n{"time":"2","op\n[1,2]\n"text"\nnull\n{"time":"3","operation":"b"}\r\n{"time":"4","operation":"c"}');
    const seen: string[] = [];
    const result = await scanAuditLog({ path, onRecord: (r) => seen.push(r.operation) });
    assert.equal(seen, ["a", "b", "c"]);
    assert.equal(result, { records: 3, invalidLines: 4, startOffset: 0, endOffset: (await stat(path)).size });
  });
});
scan("reads a long log without holding it as one string", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const line = JSON.stringify({ time: "t", operation: "x", pad: "y".repeat(1000) });
    await writeFile(path, `${line}\n`.repeat(5000));
    let n = 0;
    assert.equal(await scanAuditLog({ path, onRecord: () => void n++ }), { records: 5000, invalidLines: 0, startOffset: 0, endOffset: (line.length + 1) * 5000 });
    assert.is(n, 5000);
  });
});
scan("a missing file, or a missing directory, has no records", async () => {
  await inTemp(async (dir) => {
    let called = false;
    assert.equal(await scanAuditLog({ path: join(dir, "absent.jsonl"), onRecord: () => void (called = true) }), { records: 0, invalidLines: 0, startOffset: 0, endOffset: 0 });
    assert.equal(await scanAuditLog({ path: join(dir, "no", "such", "audit.jsonl"), onRecord: () => void (called = true) }), { records: 0, invalidLines: 0, startOffset: 0, endOffset: 0 });
    assert.is(called, false);
  });
});
scan("fromOffset: a second scan from the first one's endOffset passes on only what was written since; a torn last line is read again", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "x", id: "1" }));
    const ids: unknown[] = [];
    const first = await scanAuditLog({ path, onRecord: (r) => ids.push(r.id) });
    await w.append(entry({ operation: "y", id: "2" }));
    await w.close();
    await appendFile(path, '{"time":"2026-01-01T00:00:00Z","operation":"z","id":"3"');
    const second = await scanAuditLog({ path, fromOffset: first.endOffset, onRecord: (r) => ids.push(r.id) });
    assert.equal(ids, ["1", "2"]);
    assert.equal([second.records, second.invalidLines], [1, 1]);
    await appendFile(path, "}\n");
    const third = await scanAuditLog({ path, fromOffset: second.endOffset, onRecord: (r) => ids.push(r.id) });
    assert.equal(ids, ["1", "2", "3"]);
    assert.is(third.endOffset, (await stat(path)).size);
  });
});
scan("reads what createAuditWriter wrote", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const w = await createAuditWriter({ path });
    await w.append(entry({ operation: "x", id: "1" }));
    await w.append(entry({ operation: "y", id: "2" }));
    await w.close();
    const ids: unknown[] = [];
    assert.equal(await scanAuditLog({ path, onRecord: (r) => ids.push(r.id) }), { records: 2, invalidLines: 0, startOffset: 0, endOffset: (await stat(path)).size });
    assert.equal(ids, ["1", "2"]);
  });
});

// A log of `days` days, `perHour` records an hour, oldest first; `extra(i, time)` may add lines.
function longLog(o: { days: number; perHour: number; endMs: number; pad?: number; extra?: (i: number, t: number) => string[] }): { text: string; times: number[] } {
  const lines: string[] = [];
  const times: number[] = [];
  const n = o.days * 24 * o.perHour;
  const step = 3_600_000 / o.perHour;
  for (let i = 0; i < n; i++) {
    const t = o.endMs - (n - i) * step;
    lines.push(JSON.stringify({ time: new Date(t).toISOString(), operation: "usageEvent", id: `r${i}`, pad: "p".repeat(o.pad ?? 600) }));
    times.push(t);
    for (const x of o.extra?.(i, t) ?? []) {
      lines.push(x);
      const parsed = (() => { try { return JSON.parse(x); } catch { return undefined; } })();
      if (parsed?.time) times.push(Date.parse(parsed.time));
    }
  }
  return { text: lines.join("\n") + "\n", times };
}
const END = Date.parse("2026-11-23T12:00:00Z");
const DAY = 86_400_000;

scan("sinceMs: reads only the tail that can hold newer records, and every newer record is in it", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const { text, times } = longLog({ days: 30, perHour: 20, endMs: END });
    await writeFile(path, text);
    const sinceMs = END - 2 * DAY;
    const seen: number[] = [];
    const result = await scanAuditLog({ path, sinceMs, onRecord: (r) => seen.push(Date.parse(r.time)) });
    assert.is(result.invalidLines, 0, "the scan starts at a line boundary");
    assert.is(seen.filter((t) => t >= sinceMs).length, times.filter((t) => t >= sinceMs).length, "every record at or after sinceMs");
    // 2 days + 6 h of slack + at most 1 MiB of the 30 days: far less than the whole log.
    assert.ok(result.records < times.length / 8, `${result.records} of ${times.length} records read`);
    assert.ok(result.startOffset > text.length / 2, `started at ${result.startOffset} of ${text.length}`);
    // What is read before the slack's start is less than the 1 MiB where the search stops.
    const lineBytes = text.length / times.length;
    const early = seen.filter((t) => t < sinceMs - AUDIT_ORDER_SLACK_MS).length;
    assert.ok(early * lineBytes <= (1 << 20) + 2 * lineBytes, `${early} records older than the slack read`);
  });
});
scan("sinceMs: records out of order by less than the slack, torn lines and lines longer than a read are all survived", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const sinceMs = END - 2 * DAY;
    const { text, times } = longLog({
      days: 20, perHour: 12, endMs: END,
      extra: (i, t) => [
        ...(i % 97 === 0 ? ['{"time":"2026-', "not json at all"] : []),
        ...(i % 501 === 0 ? [JSON.stringify({ time: new Date(t).toISOString(), operation: "big", pad: "b".repeat(200_000) })] : []),
        // A record stamped 5 h later than its neighbours (another process's clock or queue).
        ...(Math.abs(t - (sinceMs - 4 * 3_600_000)) < 3_600_000 / 12 ? [JSON.stringify({ time: new Date(sinceMs + 3_600_000).toISOString(), operation: "early", id: "early" })] : []),
      ],
    });
    await writeFile(path, text);
    const seen: string[] = [];
    const seenTimes: number[] = [];
    await scanAuditLog({ path, sinceMs, onRecord: (r) => (seen.push(String(r.id)), seenTimes.push(Date.parse(r.time))) });
    assert.ok(seen.includes("early"), "a record 5 h out of order is still read");
    assert.is(seenTimes.filter((t) => t >= sinceMs).length, times.filter((t) => t >= sinceMs).length);
    assert.ok(seen.length < times.length / 4, `${seen.length} of ${times.length} read`);
  });
});
scan("sinceMs: a short log is read whole; a log all newer than sinceMs too; a missing file has no records", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, "audit.jsonl");
    const short = longLog({ days: 3, perHour: 2, endMs: END });
    await writeFile(path, short.text);
    assert.equal(await scanAuditLog({ path, sinceMs: END - DAY, onRecord: () => {} }), { records: short.times.length, invalidLines: 0, startOffset: 0, endOffset: short.text.length });
    const recent = longLog({ days: 1, perHour: 400, endMs: END });
    await writeFile(path, recent.text);
    assert.ok(recent.text.length > 4 << 20, "a log of several MiB");
    assert.equal(await scanAuditLog({ path, sinceMs: END - 2 * DAY, onRecord: () => {} }), { records: recent.times.length, invalidLines: 0, startOffset: 0, endOffset: recent.text.length });
    assert.equal(await scanAuditLog({ path: join(dir, "absent.jsonl"), sinceMs: END, onRecord: () => {} }), { records: 0, invalidLines: 0, startOffset: 0, endOffset: 0 });
  });
});
scan.run();
