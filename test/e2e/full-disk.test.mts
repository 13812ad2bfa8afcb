// A data directory whose disk fills up mid-run (a tmpfs, as root): a record counts only when
// every byte of it is on disk. Whatever the point where the space runs out (the first intent,
// an outcome, a later intent), no event may be billed without a complete intent in audit.jsonl,
// the run stops sending, says exactly what it sent, and a rerun after freeing space bills
// every event exactly once. A lock that cannot be filled is removed, never left behind.
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describe, runScript } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";
import { mountTmpfs, type Tmpfs } from "../helpers/tmpfs.mts";
import { hourBack } from "../helpers/hours.mts";
import { loadLedger } from "../../lib/metering/submission.mts";
import { usageKey } from "../../lib/metering/time.mts";

const probe = await mountTmpfs(64 * 1024);
/** A fresh 1 MiB disk holding a copy of `config`. */
async function freshDisk(config: string): Promise<Tmpfs> {
  const disk = await mountTmpfs(1024 * 1024);
  if ("skip" in disk) throw new Error(disk.skip);
  await copyFile(config, join(disk.dir, "config.json"));
  return disk;
}
const F = suite("a full disk under the data directory");

if ("skip" in probe) {
  process.stderr.write(`full-disk tests skipped: ${probe.skip}\n`);
  F.skip("every byte of a record on disk, or nothing sent", () => {});
} else {
  await probe.unmount();
  const { sb, env, dataDir, customers, events } = await startFleet({ customers: 4, dimensions: 25 });
  F.after(async () => {
    await sb.stop();
  });
  const config = join(dataDir, "config.json");

  const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

  // Free space at the start of a run, from "not even the first intent" to "a later outcome".
  // The run lock takes a page (4 KiB); a batch of 25 writes an intent of about 9 KB and an
  // outcome of about 25 KB. 8 KiB leaves room for part of the first intent only.
  const BUDGETS_KB = [4, 8, 16, 44, 56, 80];
  const seen = { intent: 0, outcome: 0, torn: 0 };

  BUDGETS_KB.forEach((budgetKb, i) => {
    F(`${budgetKb} KiB free at the start: nothing billed without its intent on disk; the rerun bills each event once`, async () => {
      const disk = await freshDisk(config);
      try {
        // Hours fixed when the file started: each case has its own, whenever the clock turns.
        const hour = hourBack(i + 1);
        const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
        const intended = new Map<string, number>();
        customers.forEach((c, ci) => c.dimensions.forEach((d, di) => {
          const q = ci * 100 + di + 1 + i * 1000;
          intended.set(`${c.resourceUsageId}|${d}`, q);
          lines.push(`${c.subscriptionId},${c.managedResourceGroup},${d},${q},${iso(hour)}`);
        }));
        const file = join(dataDir, "..", `full-disk-${i}.csv`);
        await writeFile(file, `${lines.join("\n")}\n`);
        const runEnv = { ...env, METERING_DATA_DIR: disk.dir };
        const billed = async () => (await events()).filter((e) => e.effectiveStartTime === iso(hour));

        await disk.fillLeaving(budgetKb * 1024);
        const r = await runScript("2-emit-meter.mts", ["--file", file, "--concurrency", "1"], { env: runEnv });
        assert.is(r.code, 1, describe(r));
        // Each event the emulator holds has a complete intent record in the log, and what it
        // holds is exactly what the run says it sent.
        const held = await billed();
        const { ledger } = await loadLedger({ auditPath: join(disk.dir, "audit.jsonl") });
        for (const e of held) {
          const entry = ledger.get(usageKey({ resourceId: e.resourceId, dimension: e.dimension, effectiveStartTime: e.effectiveStartTime }));
          assert.ok(entry, `billed ${e.dimension} has no intent in the audit log`);
        }
        const m = /Cannot write the (intent|outcome) to (\S+audit\.jsonl): no space left on device; (\d+) batch(?:es)? \((\d+) events?\) (?:was|were) sent and recorded in this run(?:; (\d+) batch(?:es)? \((\d+) events?\) (?:was|were) sent without a recorded outcome[^;]*)?; nothing else was sent/
          .exec(r.stderr);
        assert.ok(m, `the message says what was sent and what not\n${describe(r)}`);
        seen[m![1] as "intent" | "outcome"]++;
        assert.is(m![2], join(disk.dir, "audit.jsonl"));
        const recorded = Number(m![4]);
        const unrecorded = Number(m![6] ?? 0);

        assert.is(held.length, recorded + unrecorded, "sent = recorded + sent without an outcome");
        const log = await readFile(join(disk.dir, "audit.jsonl"), "utf8").catch(() => "");
        if (log.length > 0 && !log.endsWith("\n")) seen.torn++;
        assert.equal((await readdir(disk.dir)).filter((n) => n.endsWith(".lock") || n.endsWith(".tmp")), [], "no lock or temp file left behind");

        // Room again: the rerun sends the rest and settles what was sent without an outcome.
        await disk.unfill();
        const again = await runScript("2-emit-meter.mts", ["--file", file], { env: runEnv });
        assert.is(again.code, 0, describe(again));
        const all = await billed();
        assert.is(all.length, 100, "every event billed");
        assert.is(new Set(all.map((e) => `${e.resourceId}|${e.dimension}`)).size, 100, "none twice");
        for (const e of all) {
          const c = customers.find((x) => x.resourceUsageId.toLowerCase() === e.resourceId.toLowerCase())!;
          assert.is(e.quantity, intended.get(`${c.resourceUsageId}|${e.dimension}`), "with its intended quantity");
        }
      } finally {
        await disk.unmount();
      }
    });
  });

  F("the runs above met a failed intent, a failed outcome and a short write (torn record)", () => {
    assert.ok(seen.intent > 0 && seen.outcome > 0 && seen.torn > 0, JSON.stringify(seen));
  });

  F("no space for the run lock or the config lock: a clear error, no lock left, config unchanged, the next run does not wait", async () => {
    const disk = await freshDisk(config);
    try {
      const runEnv = { ...env, METERING_DATA_DIR: disk.dir };
      const before = await readFile(join(disk.dir, "config.json"), "utf8");
      await disk.fillLeaving(0);
      const c = customers[0];
      const r = await runScript("2-emit-meter.mts", [c.subscriptionId, c.managedResourceGroup, "1", c.dimensions[0], "1"], { env: runEnv });
      assert.is(r.code, 1, describe(r));
      assert.match(r.stderr, new RegExp(`Cannot create the lock ${join(disk.dir, "emit.lock").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: no space left on device; nothing was done`));
      const d = await runScript("0-add-defaults.mts", [], { env: runEnv });
      assert.is(d.code, 1, describe(d));
      assert.match(d.stderr, /Cannot create the lock \S+config\.json\.lock: no space left on device/);
      assert.equal((await readdir(disk.dir)).filter((n) => n !== "filler").sort(), ["config.json"], "no lock, no temp file, no audit log");
      assert.is(await readFile(join(disk.dir, "config.json"), "utf8"), before);

      await disk.unfill();
      const next = await runScript("2-emit-meter.mts", [c.subscriptionId, c.managedResourceGroup, "1", c.dimensions[0], "1", "--wait-lock", "0"], { env: runEnv });
      assert.not.match(next.stderr, /Waiting for another run/);
      assert.ok(next.code === 0 || /Conflict|Already accepted/.test(next.stderr + next.stdout), describe(next));
    } finally {
      await disk.unmount();
    }
  });
}
F.run();
