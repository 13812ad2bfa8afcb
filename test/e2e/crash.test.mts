// Crash safety: a run of 500 events over 20 customers is killed with SIGKILL at a random
// moment, 22 times in a row (at least 20 land before the run ends), each time followed by a rerun of the same file. Afterwards the
// metering emulator must hold exactly the 500 intended events of each round, none twice and
// each with its intended quantity, and the audit log must agree (every event accepted with
// that quantity, nothing left open).
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { describe, inheritedEnv, ROOT, runScript } from "../helpers/scripts.mts";
import { startFleet } from "../helpers/fleet.mts";
import { tsRunner } from "../../sandbox/core/runtime.mts";
import { loadLedger } from "../../lib/metering/submission.mts";

// 22 rounds (hours 1..22 back; the calibration run takes hour 23), of which at least 20 must be killed.
const ROUNDS = 22;
const MIN_KILLS = 20;
const { sb, env, auditPath, customers, events } = await startFleet({ customers: 20, dimensions: 25 });
// The rounds' files in a directory of this file's own (the data directory's parent is the shared temp directory).
const filesDir = await mkdtemp(join(tmpdir(), "metering-crash-"));
const auditSize = () => stat(auditPath).then((s) => s.size, () => 0);

/** Starts 2-emit-meter on `file`; kills it with SIGKILL after `killAfter()` resolves (unless it ended). */
function runAndKill(file: string, killAfter: (started: number) => Promise<void>): Promise<{ killed: boolean; code: number | null }> {
  const [cmd, ...pre] = tsRunner();
  const child = spawn(cmd, [...pre, join(ROOT, "scripts", "2-emit-meter.mts"), "--file", file], { cwd: ROOT, env: { ...inheritedEnv(), ...env }, stdio: "ignore" });
  let ended = false;
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => { ended = true; r(code); }));
  return (async () => {
    const t0 = Date.now();
    await Promise.race([killAfter(t0), exited]);
    const killed = !ended;
    if (killed) child.kill("SIGKILL");
    return { killed, code: await exited };
  })();
}

const C = suite("crash and rerun");
let roundsWithOpenIntents = 0;
let kills = 0;

/** Writes round `round`'s file (hour `round + 1` back from `baseHour`); returns it and the intended quantities. */
async function roundFile(round: number, baseHour: number) {
  // Absolute hours, so a round that straddles the top of an hour means the same events.
  const t = new Date(baseHour - (round + 1) * 3_600_000).toISOString().replace(".000Z", "Z");
  const intended = new Map<string, number>();
  const lines = ["subscription,managed-resource-group,dimension,quantity,effective-start-time"];
  customers.forEach((c, ci) => c.dimensions.forEach((d, di) => {
    const q = ((round * 7 + ci * 3 + di) % 50) + 1;
    intended.set(`${c.resourceUsageId}|${d}`, q);
    lines.push(`${c.subscriptionId},${c.managedResourceGroup},${d},${q},${t}`);
  }));
  const file = join(filesDir, `crash-round-${round}.csv`);
  await writeFile(file, `${lines.join("\n")}\n`);
  return { t, intended, file };
}

C(`${ROUNDS} rounds of 500 events over 20 customers, each killed at a random moment and rerun: exactly the intended events`, async () => {
  const baseHour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  // Calibration (not killed, its own hour): how long a whole run takes, and when it starts sending.
  const calibration = await roundFile(ROUNDS, baseHour);
  const size0 = await auditSize();
  let firstIntentMs = 0;
  const calStart = Date.now();
  const c0 = await runAndKill(calibration.file, async (t0) => {
    while ((await auditSize()) === size0) await new Promise((r) => setTimeout(r, 5));
    firstIntentMs = Date.now() - t0;
    await new Promise(() => {});
  });
  const wholeMs = Date.now() - calStart;
  assert.is(c0.code, 0, "the calibration run succeeds");
  // How much one whole run appends to the log: kills mid-send aim at a random point of it.
  const runGrowth = (await auditSize()) - size0;
  process.stderr.write(`crash test: a whole run takes ${wholeMs} ms and starts sending after ${firstIntentMs} ms\n`);
  for (let round = 0; round < ROUNDS; round++) {
    const { t, intended, file } = await roundFile(round, baseHour);
    assert.is(intended.size, 500);

    const sizeBefore = await auditSize();
    // Every fourth round: kill at a random moment of start-up (config, lock, ledger, signing).
    // The others: kill once the log has grown by a random part of what a whole run appends,
    // i.e. at a random point while sending (between or inside intent/outcome pairs).
    const killed = await runAndKill(file, async (t0) => {
      if (round % 4 === 0) {
        await new Promise((r) => setTimeout(r, Math.random() * firstIntentMs));
        return;
      }
      const target = sizeBefore + 1 + Math.floor(Math.random() * runGrowth * 0.9);
      while ((await auditSize()) < target && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 2));
    });
    if (killed.killed) kills++;
    const mid = await loadLedger({ auditPath });
    if (mid.ledger.unresolved().length > 0) roundsWithOpenIntents++;

    const rerun = await runScript("2-emit-meter.mts", ["--file", file, "--json"], { env, timeoutMs: 300_000 });
    assert.is(rerun.code, 0, `round ${round}: ${describe(rerun)}`);

    const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === Date.parse(t));
    assert.is(evs.length, 500, `round ${round}: the emulator holds ${evs.length} events for ${t}`);
    const seen = new Set<string>();
    for (const e of evs) {
      const k = `${e.resourceId}|${e.dimension}`;
      assert.not.ok(seen.has(k), `round ${round}: ${k} twice`);
      seen.add(k);
      assert.is(e.quantity, intended.get(k), `round ${round}: quantity of ${k}`);
    }
    const { ledger } = await loadLedger({ auditPath });
    assert.is(ledger.unresolved().length, 0, `round ${round}: open events left in the audit log`);
    const mine = [...ledger.entries.values()].filter((e) => Date.parse(e.event.effectiveStartTime) === Date.parse(t));
    assert.is(mine.length, 500);
    for (const e of mine) {
      assert.is(e.state, "accepted");
      assert.is(e.billedQuantity, intended.get(`${e.event.resourceId}|${e.event.dimension}`));
    }
  }
  process.stderr.write(`crash test: ${kills} of ${ROUNDS} runs killed mid-run; ${roundsWithOpenIntents} left intents without outcome\n`);
  assert.ok(kills >= MIN_KILLS, `at least ${MIN_KILLS} runs were killed before they finished (${kills})`);
  assert.ok(roundsWithOpenIntents >= 1, "at least one kill landed between an intent and its outcome");
});

C.after(async () => {
  await rm(filesDir, { recursive: true, force: true });
  await sb.stop();
});

C.run();
