// Exactly once at the edges of time: a usage file of hours-ago rows whose answers were lost (or
// whose run was killed) and that is run again after the UTC hour changed; and an event sent
// without an answer whose resend reaches the API past its 24-hour window. Both clocks move: the
// sandbox's through POST /clock, the scripts' through the test-only clock preload. Every check
// reads the metering emulator's recorded events and the audit log, not only the output.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { CLOCK_PRELOAD, describe, runScript, type RunOptions } from "../helpers/scripts.mts";
import { startFleet, type AcceptedEvent, type FleetCustomer } from "../helpers/fleet.mts";
import { loadLedger } from "../../lib/metering/submission.mts";

const HOUR_MS = 3_600_000;
const { sb, env, dataDir, auditPath, customers, events, counters } = await startFleet({
  customers: 2, dimensions: 8, env: { METERING_HTTP_TRY_TIMEOUT_MS: "2000" },
});
const [c1, c2] = customers;

/** Both clocks, moved together (the sandbox's can run ahead of the script's by `sandboxAheadMs`). */
let clockOffsetMs = 0;
async function setClocks(offsetMs: number, sandboxAheadMs = 0) {
  clockOffsetMs = offsetMs;
  await admin(sb, "POST", "/clock", { offsetMs: offsetMs + sandboxAheadMs });
}
const run = (args: string[], o: RunOptions = {}) =>
  runScript("2-emit-meter.mts", args, { ...o, preload: [CLOCK_PRELOAD], env: { ...env, METERING_TEST_CLOCK_OFFSET_MS: String(clockOffsetMs), ...o.env } });
const dropBatches = () => admin(sb, "POST", "/faults", { service: "metering", route: "/api/batchUsageEvent", method: "POST", kind: "drop", times: -1 });
const clearFaults = () => admin(sb, "DELETE", "/faults");
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
const eventsOf = async (dimension: string): Promise<AcceptedEvent[]> => (await events()).filter((e) => e.dimension === dimension);
const meteringCalls = async () => Object.values((await counters()).metering ?? {}).reduce((n, c) => n + c, 0);

async function usageFile(name: string, rows: Array<{ c: FleetCustomer; dimension: string; quantity: number; hoursAgo: number }>) {
  const path = join(dataDir, "..", `${name}-${Date.now()}.csv`);
  const lines = ["subscription,managed-resource-group,dimension,quantity,hours-ago", ...rows.map((r) => `${r.c.subscriptionId},${r.c.managedResourceGroup},${r.dimension},${r.quantity},${r.hoursAgo}`)];
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

const R = suite("a rerun of the same input after the hour changed");

R("answers lost, the same hours-ago file run again in the next hour: finishes the run, bills each row once", async () => {
  const dim = c1.dimensions[0];
  const file = await usageFile("lost", [{ c: c1, dimension: dim, quantity: 3, hoursAgo: 1 }, { c: c2, dimension: dim, quantity: 4, hoursAgo: 1 }]);
  await dropBatches();
  const first = await run(["--file", file]);
  await clearFaults();
  assert.is(first.code, 1, describe(first));
  // The hour the run resolved hours-ago 1 to (read back, so the top of a real hour cannot fool the test).
  const sentHour = (await eventsOf(dim))[0]?.effectiveStartTime;
  assert.equal((await eventsOf(dim)).map((e) => [e.quantity, e.effectiveStartTime]).sort(), [[3, sentHour], [4, sentHour]], "the dropped answers were accepted");

  await setClocks(clockOffsetMs + HOUR_MS);
  await admin(sb, "DELETE", "/requests");
  const again = await run(["--file", file]);
  assert.is(again.code, 0, describe(again));
  assert.match(again.stderr, /finishing that run/);
  const billed = await eventsOf(dim);
  assert.equal(billed.map((e) => [e.quantity, e.effectiveStartTime]).sort(), [[3, sentHour], [4, sentHour]], "2 rows, 2 events: none billed again for the new hour");
  assert.is((await counters()).metering?.["POST /api/batchUsageEvent"], 2, "one resend per customer, nothing new");
  assert.match(first.stderr, /Finish this run with: node scripts\/2-emit-meter\.mts --resend/, "the advice after the interrupted run");

  // That run is finished now: the same file means the current hours again (an hourly job).
  const next = await run(["--file", file]);
  assert.is(next.code, 0, describe(next));
  const later = (await eventsOf(dim)).filter((e) => e.effectiveStartTime !== sentHour);
  assert.equal(later.map((e) => e.quantity).sort(), [3, 4], "two new events, for a later hour");
  assert.ok(later.every((e) => e.effectiveStartTime === later[0].effectiveStartTime && Date.parse(e.effectiveStartTime) > Date.parse(sentHour)));
});

R("killed after the intents were written, rerun in the next hour: exactly the rows of the killed run", async () => {
  const dim = c1.dimensions[1];
  const file = await usageFile("killed", [{ c: c1, dimension: dim, quantity: 5, hoursAgo: 0 }, { c: c2, dimension: dim, quantity: 6, hoursAgo: 0 }]);
  // Hold every batch call, so the process is surely inside a send when it is killed.
  await admin(sb, "POST", "/faults", { service: "metering", route: "/api/batchUsageEvent", method: "POST", kind: "delay", delayMs: 60_000, times: -1 });
  // Killed once both intents (one batch per customer) are in the log.
  const killed = await run(["--file", file], {
    env: { METERING_HTTP_TRY_TIMEOUT_MS: "120000" },
    killWhen: async () => {
      const { ledger } = await loadLedger({ auditPath, now: Date.now() + clockOffsetMs });
      return ledger.unresolved().filter((e) => e.event.dimension === dim).length === 2;
    },
  });
  assert.is(killed.code, null, `killed while sending: ${describe(killed)}`);
  await clearFaults();
  const { ledger: before } = await loadLedger({ auditPath, now: Date.now() + clockOffsetMs });
  const sentHour = before.unresolved().find((e) => e.event.dimension === dim)!.event.effectiveStartTime;

  await setClocks(clockOffsetMs + HOUR_MS);
  const again = await run(["--file", file]);
  assert.is(again.code, 0, describe(again));
  assert.equal((await eventsOf(dim)).map((e) => [e.quantity, e.effectiveStartTime]).sort(), [[5, sentHour], [6, sentHour]]);
  const { ledger } = await loadLedger({ auditPath, now: Date.now() + clockOffsetMs });
  assert.equal(ledger.unresolved(), [], "the audit log has a final answer for every event");
});
R.run();

const U = suite("an unanswered event whose resend comes too late");

U("resent past the API's window: Unknown (it may have been billed), never Expired; listed by --resend and the doctor", async () => {
  const dim = c1.dimensions[2];
  const file = await usageFile("late", [{ c: c1, dimension: dim, quantity: 7, hoursAgo: 22 }]);
  await dropBatches();
  const first = await run(["--file", file]);
  await clearFaults();
  assert.is(first.code, 1, describe(first));
  assert.is((await eventsOf(dim)).length, 1, "the first send was accepted; its answer was lost");
  const hour = Date.parse((await eventsOf(dim))[0].effectiveStartTime);

  // The script's clock 2 minutes before the window closes, the API's 2 minutes after: the
  // script still resends, and the API answers Expired.
  await setClocks(hour + 24 * HOUR_MS - 2 * 60_000 - Date.now(), 4 * 60_000);
  await admin(sb, "DELETE", "/requests");
  const resend = await run(["--resend"]);
  assert.is(resend.code, 1, describe(resend));
  assert.is((await counters()).metering?.["POST /api/batchUsageEvent"], 1, "the resend was sent");
  assert.match(resend.stdout, /Unknown\s+1/);
  assert.not.match(resend.stdout, /Expired/);
  assert.match(resend.stderr, /Unknown: .*no answer; this resend was refused \(Expired\), now past the API's window; it may have been billed/);
  assert.is((await eventsOf(dim)).length, 1, "billed once");
  const { ledger } = await loadLedger({ auditPath, now: Date.now() + clockOffsetMs });
  const entry = ledger.unresolved().find((e) => e.event.dimension === dim);
  assert.equal([entry?.state, entry?.status], ["unknown", "Expired"]);

  // Past the window on the script's clock too: listed again, not sent.
  await setClocks(clockOffsetMs + 10 * 60_000, 4 * 60_000);
  await admin(sb, "DELETE", "/requests");
  const listed = await run(["--resend", "--json"]);
  assert.is(listed.code, 1, describe(listed));
  const report = JSON.parse(listed.stdout) as { ok: boolean; events: Array<{ status: string; sent: boolean; event: { dimension: string } }> };
  assert.equal(report.events.filter((e) => e.event.dimension === dim).map((e) => [e.status, e.sent]), [["Unknown", false]]);
  assert.is(await meteringCalls(), 0, "nothing sent");

  const doctor = await runScript("doctor.mts", [c1.subscriptionId, c1.managedResourceGroup, "--json"], {
    preload: [CLOCK_PRELOAD], env: { ...env, METERING_TEST_CLOCK_OFFSET_MS: String(clockOffsetMs) },
  });
  assert.is(doctor.code, 1, describe(doctor));
  const checks = JSON.parse(doctor.stdout) as { checks?: Array<{ id: string; status: string; detail: string }> } | Array<{ id: string; status: string; detail: string }>;
  const list = Array.isArray(checks) ? checks : checks.checks ?? [];
  const unresolved = list.find((c) => c.id === "unresolved");
  assert.is(unresolved?.status, "fail", JSON.stringify(list));
  assert.match(unresolved!.detail, new RegExp(`7 ${dim} for ${iso(hour)}.*resend refused: Expired`));
});
U.after(async () => {
  await sb.stop();
});
U.run();
