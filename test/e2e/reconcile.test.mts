// 4-reconcile against the sandbox: the audit log compared per customer × dimension × day with
// GET /api/usageEvents as the publisher app. An event whose answer was lost (the API has it)
// and one that never arrived, both past the 24-hour window, are settled as billed and as not
// billed, after which --resend no longer lists them; an event sent from another machine is
// unknown to the ledger; a Mismatch day and an event missing at Microsoft (admin overrides).
// Both clocks move: the sandbox's through POST /clock, the scripts' through the clock preload.
import { copyFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { CLOCK_PRELOAD, describe, runScript, sandboxEnv, type RunOptions } from "../helpers/scripts.mts";
import { readAudit, runOk } from "../helpers/workflow.mts";

const HOUR_MS = 3_600_000;
const sb = await startTestSandbox();
const env: Record<string, string> = { ...(await sandboxEnv(sb)), METERING_HTTP_TRY_TIMEOUT_MS: "2000" };
const offerApp = sb.world.offers[0].technicalConfiguration!;
const [fabrikam, tailwind] = sb.world.customers;

let clockOffsetMs = 0;
async function setClocks(offsetMs: number) {
  clockOffsetMs = offsetMs;
  await admin(sb, "POST", "/clock", { offsetMs });
}
const withClock = (o: RunOptions = {}, e: Record<string, string> = env): RunOptions =>
  ({ ...o, preload: [CLOCK_PRELOAD], env: { ...e, METERING_TEST_CLOCK_OFFSET_MS: String(clockOffsetMs), ...o.env } });
const emit = (args: string[], e = env) => runScript("2-emit-meter.mts", args, withClock({}, e));
const reconcile = (args: string[]) => runScript("4-reconcile.mts", args, withClock());
const fault = (kind: "drop" | "reset") => admin(sb, "POST", "/faults", { service: "metering", route: "/api/usageEvent", method: "POST", kind, times: -1 });
const clearFaults = () => admin(sb, "DELETE", "/faults");
type Accepted = { resourceId: string; dimension: string; quantity: number; effectiveStartTime: string };
const accepted = () => admin<Accepted[]>(sb, "GET", "/metering/events");
const dayOf = (iso: string) => iso.slice(0, 10);

interface Line { customer?: { subscriptionId: string }; dimension: string; day: string; ledgerQuantity: number; ledgerCount: number; apiQuantity?: number; apiCount?: number; reconStatus?: string; verdict: string; note?: string }
interface Result { lines: Line[]; settlements: Array<{ billed: boolean; event: Accepted }>; unresolved: unknown[]; ok: boolean }

/** The doctor's "every usage event sent has a known fate" check for one customer. */
async function unresolvedCheck(c: { subscriptionId: string; managedResourceGroup: string }): Promise<string | undefined> {
  const r = await runScript("doctor.mts", [c.subscriptionId, c.managedResourceGroup, "--json"], withClock());
  return (JSON.parse(r.stdout).checks as Array<{ id: string; status: string }>).find((x) => x.id === "unresolved")?.status;
}

let eventDay = "";
let today = "";

const R = suite("4-reconcile");

R.before(async () => {
  await runOk("0-add-defaults.mts", [], env);
  await runOk("0-isv-setup.mts", [], env);
  for (const c of [fabrikam, tailwind]) await runOk("1-connect-customer.mts", [c.subscriptionId, c.managedResourceGroup], env);
  await runOk("0-publisher-app.mts", ["--app-id", offerApp.appId], env);

  // Accepted, with its answer: a plain match.
  const ok = await emit([fabrikam.subscriptionId, fabrikam.managedResourceGroup, "2", "cpu-hours", "3"]);
  assert.is(ok.code, 0, describe(ok));
  // Accepted by the API, the answer lost: open in the ledger.
  await fault("drop");
  const lost = await emit([fabrikam.subscriptionId, fabrikam.managedResourceGroup, "2", "storage-gb", "4"]);
  await clearFaults();
  assert.is(lost.code, 1, describe(lost));
  // Never reached the API: open too.
  await fault("reset");
  const never = await emit([tailwind.subscriptionId, tailwind.managedResourceGroup, "2", "cpu-hours", "5"]);
  await clearFaults();
  assert.is(never.code, 1, describe(never));
  const events = await accepted();
  assert.equal(events.map((e) => [e.dimension, e.quantity]).sort(), [["cpu-hours", 3], ["storage-gb", 4]]);
  eventDay = dayOf(events[0].effectiveStartTime);

  // A day later: both open events are past the API's window; only reconciliation can settle them.
  await setClocks(25 * HOUR_MS);
  today = dayOf(new Date(Date.now() + clockOffsetMs).toISOString());
});

R("refuses bad input with exit 2: a bad date, since after until, the future, half a customer", async () => {
  for (const args of [["--since", "2026-13-01"], ["--since", today, "--until", eventDay === today ? "2000-01-01" : eventDay], ["--until", "2999-01-01"], [fabrikam.subscriptionId]]) {
    const r = await reconcile(args);
    assert.is(r.code, 2, `${args.join(" ")}: ${describe(r)}`);
  }
  assert.is((await readAudit(env)).records.filter((r) => r.operation === "reconcile").length, 0);
});

R("--resend lists the two open events as Unknown before reconciling", async () => {
  const r = await emit(["--resend", "--json"]);
  assert.is(r.code, 1, describe(r));
  const report = JSON.parse(r.stdout) as { events: Array<{ status: string; sent: boolean; event: { dimension: string; quantity: number } }> };
  assert.equal(report.events.map((e) => [e.event.dimension, e.event.quantity, e.status, e.sent]).sort(), [["cpu-hours", 5, "Unknown", false], ["storage-gb", 4, "Unknown", false]]);
  assert.is(await unresolvedCheck(tailwind), "fail", "the doctor lists it too");
});

R("settles the lost answer as billed and the event that never arrived as not billed; every line matches", async () => {
  const r = await reconcile(["--since", eventDay, "--until", today, "--json"]);
  assert.is(r.code, 0, describe(r));
  const result = JSON.parse(r.stdout) as Result;
  assert.equal(result.settlements.map((s) => [s.event.dimension, s.event.quantity, s.billed]).sort(), [["cpu-hours", 5, false], ["storage-gb", 4, true]]);
  assert.equal(result.unresolved, []);
  assert.ok(result.lines.every((l) => l.verdict === "match"), r.stdout);
  const storage = result.lines.find((l) => l.dimension === "storage-gb")!;
  assert.equal([storage.ledgerQuantity, storage.ledgerCount, storage.apiQuantity, storage.apiCount, storage.reconStatus], [4, 1, 4, 1, "Submitted"]);
  // The evidence is in the audit log, one record per settled event.
  const records = (await readAudit(env)).records.filter((x) => x.operation === "reconcile");
  assert.equal(records.map((x) => [x.event.dimension, x.settled, x.evidence.submittedCount]).sort(), [["cpu-hours", "notBilled", 0], ["storage-gb", "billed", 1]]);
  assert.ok(records.every((x) => x.customer && x.key && x.time), JSON.stringify(records));
});

R("after reconciling, --resend and the doctor no longer list them and a second reconcile settles nothing", async () => {
  const resend = await emit(["--resend", "--json"]);
  assert.is(resend.code, 0, describe(resend));
  assert.equal((JSON.parse(resend.stdout) as { events: unknown[] }).events, []);
  assert.is(await unresolvedCheck(tailwind), "ok");
  const again = await reconcile(["--since", eventDay, "--until", today, "--json"]);
  assert.is(again.code, 0, describe(again));
  assert.equal((JSON.parse(again.stdout) as Result).settlements, []);
  assert.is((await readAudit(env)).records.filter((x) => x.operation === "reconcile").length, 2);
  // The table for a person: one line per customer × dimension × day.
  const table = await reconcile(["--since", eventDay, "--until", today]);
  assert.is(table.code, 0, describe(table));
  assert.match(table.stdout, /^CUSTOMER\s+DIMENSION\s+DAY\s+LEDGER qty\/n\s+API qty\/n\s+STATUS\s+VERDICT/);
  assert.match(table.stdout, /storage-gb\s+\d{4}-\d\d-\d\d\s+4\/1\s+4\/1\s+Submitted\s+match/);
});

R("usage sent from another machine (its own audit log) is unknown to the ledger: exit 1", async () => {
  const otherDir = await mkdtemp(join(tmpdir(), "metering-other-"));
  await copyFile(join(env.METERING_DATA_DIR, "config.json"), join(otherDir, "config.json"));
  const other = { ...env, METERING_DATA_DIR: otherDir };
  const sent = await emit([fabrikam.subscriptionId, fabrikam.managedResourceGroup, "1", "api-calls", "7"], other);
  assert.is(sent.code, 0, describe(sent));
  const r = await reconcile(["--since", eventDay, "--until", today, "--json"]);
  assert.is(r.code, 1, describe(r));
  const line = (JSON.parse(r.stdout) as Result).lines.find((l) => l.dimension === "api-calls")!;
  assert.equal([line.verdict, line.ledgerCount, line.apiCount, line.apiQuantity], ["unknown to the ledger", 0, 1, 7]);
  const table = await reconcile(["--since", eventDay, "--until", today]);
  assert.match(table.stderr, /unknown to the ledger: .*api-calls .*never recorded/);
  // Reconcile one customer: the other's lines are not shown.
  const one = await reconcile([tailwind.subscriptionId, tailwind.managedResourceGroup, "--since", eventDay, "--until", today, "--json"]);
  assert.is(one.code, 0, describe(one));
  assert.ok((JSON.parse(one.stdout) as Result).lines.every((l) => l.customer?.subscriptionId === tailwind.subscriptionId));
});

R("a Mismatch day and an event missing at Microsoft (the API's figures, overridden): exit 1 with those verdicts", async () => {
  const fab = (await accepted()).find((e) => e.dimension === "cpu-hours")!;
  try {
    await admin(sb, "POST", "/metering/report-overrides", { usageDate: dayOf(fab.effectiveStartTime), resourceId: fab.resourceId, dimension: "cpu-hours", reconStatus: "Mismatch", processedQuantity: 2 });
    const mismatch = await reconcile([fabrikam.subscriptionId, fabrikam.managedResourceGroup, "--since", eventDay, "--until", today, "--json"]);
    assert.is(mismatch.code, 1, describe(mismatch));
    assert.is((JSON.parse(mismatch.stdout) as Result).lines.find((l) => l.dimension === "cpu-hours")!.verdict, "Mismatch");
    await admin(sb, "DELETE", "/metering/report-overrides");
    await admin(sb, "POST", "/metering/report-overrides", { usageDate: dayOf(fab.effectiveStartTime), resourceId: fab.resourceId, dimension: "cpu-hours", submittedCount: 0, submittedQuantity: 0 });
    const missing = await reconcile([fabrikam.subscriptionId, fabrikam.managedResourceGroup, "--since", eventDay, "--until", today, "--json"]);
    assert.is(missing.code, 1, describe(missing));
    const line = (JSON.parse(missing.stdout) as Result).lines.find((l) => l.dimension === "cpu-hours")!;
    assert.equal([line.verdict, line.ledgerCount, line.apiCount], ["missing at Microsoft", 1, undefined]);
  } finally {
    await admin(sb, "DELETE", "/metering/report-overrides");
  }
});

R("without publisher.app it says to run 0-publisher-app (exit 2)", async () => {
  const bare = await sandboxEnv(sb);
  await runOk("0-add-defaults.mts", [], bare);
  await runOk("0-isv-setup.mts", [], bare);
  const r = await runScript("4-reconcile.mts", [], { env: bare });
  assert.is(r.code, 2, describe(r));
  assert.match(r.stderr, /run 0-publisher-app first/);
});

R.after(async () => {
  await admin(sb, "POST", "/clock", { offsetMs: 0 });
  await sb.stop();
});
R.run();
