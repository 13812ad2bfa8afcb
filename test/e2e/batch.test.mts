// 2-emit-meter --file against the sandbox, as a process: batches per customer, one token and
// one signature per customer, events already accepted not sent again, malformed files refused
// before anything is sent, and two runs at once over overlapping files. Checked against the
// metering emulator's accepted events and the sandbox's request counters.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript } from "../helpers/scripts.mts";
import { fleetCsv, startFleet, type AcceptedEvent } from "../helpers/fleet.mts";
import { hourBack, isoHour } from "../helpers/hours.mts";
import { loadLedger } from "../../lib/metering/submission.mts";

const METERING_AUDIENCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
const { sb, env, dataDir, auditPath, customers, events, counters } = await startFleet({ customers: 6, dimensions: 5 });
type Ev = AcceptedEvent;
const sum = (o: Record<string, number> | undefined, re: RegExp) => Object.entries(o ?? {}).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
const meteringCalls = async () => sum((await counters()).metering, /./);
const readAuditText = () => readFile(auditPath, "utf8").catch(() => "");
const file = async (name: string, text: string) => {
  const path = join(dataDir, "..", `${Date.now()}-${Math.random().toString(36).slice(2)}-${name}`);
  await writeFile(path, text);
  return path;
};
const keyOf = (e: Ev) => `${e.resourceId}|${e.dimension}|${Date.parse(e.effectiveStartTime)}`;

const B = suite("2-emit-meter --file");

B("a CSV of 30 events for 6 customers: one token and one batch call per customer, one signed assertion for all; all accepted", async () => {
  await admin(sb, "DELETE", "/requests");
  const tokensBefore = (await admin<Array<{ aud: string }>>(sb, "GET", "/tokens")).filter((t) => t.aud === METERING_AUDIENCE).length;
  const { csv, rows } = fleetCsv(customers, { hour: hourBack(1) });
  const path = await file("usage.csv", csv);
  const r = await runScript("2-emit-meter.mts", ["--file", path], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /Accepted\s+30/);
  const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === hourBack(1));
  assert.is(evs.length, rows);
  // Every intended quantity, exactly once.
  customers.forEach((c, ci) => c.dimensions.forEach((d, di) => {
    const found = evs.filter((e) => e.resourceId === c.resourceUsageId && e.dimension === d);
    assert.is(found.length, 1, `${c.managedResourceGroup} ${d}`);
    assert.is(found[0].quantity, ci + di + 1);
  }));
  const c = await counters();
  assert.is(sum(c.metering, /batchUsageEvent/), customers.length, "one batch call per customer");
  assert.is(sum(c.metering, /POST \/api\/usageEvent/), 0, "no single-event calls");
  const tokens = (await admin<Array<{ aud: string; tenantId: string; assertion?: { jti?: string } }>>(sb, "GET", "/tokens")).filter((t) => t.aud === METERING_AUDIENCE).slice(tokensBefore);
  assert.is(tokens.length, customers.length, "one token exchange per customer");
  assert.is(new Set(tokens.map((t) => t.tenantId)).size, customers.length, "each in its customer's tenant");
  // The assertion names no tenant: one signed assertion served every customer's exchange (one
  // signature, plus the authentication challenge of the run's Key Vault client).
  assert.is(new Set(tokens.map((t) => t.assertion?.jti)).size, 1, JSON.stringify(tokens.map((t) => t.assertion)));
  assert.ok(sum(c.keyvault, /sign/) >= 1 && sum(c.keyvault, /sign/) <= 2, JSON.stringify(c.keyvault));
  // The audit log agrees: every event accepted with its quantity, nothing open.
  const { ledger } = await loadLedger({ auditPath });
  assert.is(ledger.unresolved().length, 0);
  assert.is([...ledger.entries.values()].filter((e) => e.state === "accepted" && Date.parse(e.event.effectiveStartTime) === hourBack(1)).length, rows);
});

B("the same file again: everything already accepted per the audit log, no call to the metering API, exit 0", async () => {
  const before = await meteringCalls();
  const { csv } = fleetCsv(customers, { hour: hourBack(1) });
  const r = await runScript("2-emit-meter.mts", ["--file", await file("usage.csv", csv), "--json"], { env });
  assert.is(r.code, 0, describe(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.counts, { AlreadyAccepted: 30 });
  assert.is(await meteringCalls(), before);
});

B("JSON Lines on stdin with effective-start-time; --json reports per status", async () => {
  const t = new Date(hourBack(2) + 15 * 60_000).toISOString();
  const lines = customers.slice(0, 3).map((c) => JSON.stringify({ subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup, dimension: c.dimensions[0], quantity: 2.5, effectiveStartTime: t }));
  const r = await runScript("2-emit-meter.mts", ["--file", "-", "--json"], { env, stdin: `${lines.join("\n")}\n` });
  assert.is(r.code, 0, describe(r));
  const report = JSON.parse(r.stdout);
  assert.equal(report.counts, { Accepted: 3 });
  assert.is(report.events.length, 3);
  assert.ok(report.events.every((e: { usageEventId?: string }) => typeof e.usageEventId === "string"));
  const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === Date.parse(t));
  assert.is(evs.length, 3);
  assert.ok(evs.every((e) => e.quantity === 2.5));
});

B("malformed files: exit 2, every bad line named, nothing sent and nothing written", async () => {
  const c = customers[0];
  const audit = await readAuditText();
  const calls = await meteringCalls();
  const tooOld = new Date(Date.now() - 25 * 3_600_000).toISOString();
  const future = new Date(Date.now() + 2 * 3_600_000).toISOString();
  const head = "subscription,managed-resource-group,dimension,quantity,hours-ago";
  const cases: Array<[string, string, RegExp[]]> = [
    ["wrong columns", "subscription,resource-group,dimension,quantity,hours-ago\n", [/line 1: bad header: unknown column "resource-group"/, /missing column managedResourceGroup/]],
    ["bad numbers", `${head}\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},abc,3\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[1]},-1,3\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[2]},1,24\n`, [/line 2: quantity "abc"/, /line 3: quantity "-1"/, /line 4: hours-ago "24"/]],
    ["unknown customer", `${head}\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},1,5\n00000000-0000-4000-8000-000000000001,mrg-nobody,${c.dimensions[0]},1,5\n`, [/line 3: customer 00000000-0000-4000-8000-000000000001\/mrg-nobody is not connected/]],
    ["outside the 24 h window", `subscription,managed-resource-group,dimension,quantity,effective-start-time\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},1,${tooOld}\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[1]},1,${future}\n`, [/line 2: effective-start-time .* outside the API's window/, /line 3: effective-start-time .* outside/]],
    ["the same hour twice", `${head}\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},1,6\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},2,6\n`, [/line 3: same customer, dimension and hour as line 2/]],
    ["bad JSON line", `{"subscription":"${c.subscriptionId}","mrg":"${c.managedResourceGroup}","dimension":"x","quantity":1,"hoursAgo":5}\nnot json\n`, [/line 2: not a JSON object/]],
  ];
  for (const [name, text, patterns] of cases) {
    const ext = name === "bad JSON line" ? "usage.jsonl" : "usage.csv";
    const r = await runScript("2-emit-meter.mts", ["--file", await file(ext, text), "--verbose"], { env });
    assert.is(r.code, 2, `${name}: ${describe(r)}`);
    for (const p of patterns) assert.match(r.stderr, p, `${name}: ${describe(r)}`);
    assert.not.match(r.stderr, /^\s+at /m, "no stack trace");
  }
  assert.is(await readAuditText(), audit, "the audit log is unchanged");
  assert.is(await meteringCalls(), calls, "nothing was sent");
  // Not a file at all, and an unknown format.
  for (const args of [["--file", join(dataDir, "missing.csv")], ["--file", await file("usage.txt", "x")], ["--file", "-", "--format", "xml"], ["--concurrency", "0", "--file", "-"]]) {
    const r = await runScript("2-emit-meter.mts", args, { env });
    assert.is(r.code, 2, describe(r));
  }
});

B("--skip-invalid sends the good rows, reports the bad ones and exits 1", async () => {
  const c = customers[1];
  const at = isoHour(hourBack(7));
  const text = `subscription,managed-resource-group,dimension,quantity,effective-start-time\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},4,${at}\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[1]},zero,${at}\n`;
  const r = await runScript("2-emit-meter.mts", ["--file", await file("usage.csv", text), "--skip-invalid"], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /Skipped line 3/);
  assert.match(r.stdout, /Invalid \(skipped\)\s+1/);
  const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === hourBack(7));
  assert.is(evs.length, 1);
  assert.is(evs[0].quantity, 4);
});

B("refusals are recorded, not retried: an unknown dimension costs one call and exits 1 with its line", async () => {
  const c = customers[2];
  const before = await meteringCalls();
  const at = isoHour(hourBack(8));
  const text = `subscription,managed-resource-group,dimension,quantity,effective-start-time\n${c.subscriptionId},${c.managedResourceGroup},no-such-dimension,1,${at}\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},1,${at}\n`;
  const r = await runScript("2-emit-meter.mts", ["--file", await file("usage.csv", text)], { env });
  assert.is(r.code, 1, describe(r));
  assert.match(r.stderr, /InvalidDimension: line 2/);
  assert.is(await meteringCalls(), before + 1);
  const { ledger } = await loadLedger({ auditPath });
  assert.is(ledger.unresolved().length, 0, "a refusal is final, not open");
  // A rerun sends the refused row again (it was never accepted), but not the accepted one.
  const again = await runScript("2-emit-meter.mts", ["--file", await file("usage.csv", text), "--json"], { env });
  assert.is(again.code, 1);
  assert.equal(JSON.parse(again.stdout).counts, { AlreadyAccepted: 1, InvalidDimension: 1 });
});

B("an event the API finds expired (its clock is ahead) is recorded as Expired, not retried, exit 1", async () => {
  const c = customers[3];
  const before = await meteringCalls();
  // The sandbox's clock runs 2 h ahead: an event 23 hours back is 25 hours old for the API.
  // (Entra then needs the skew to take our assertion's times: that part is not under test.)
  await admin(sb, "PATCH", "/options", { entra: { clockSkewS: 3 * 3600 } });
  await admin(sb, "POST", "/clock", { offsetMs: 2 * 3_600_000 });
  try {
    const text = `subscription,managed-resource-group,dimension,quantity,hours-ago\n${c.subscriptionId},${c.managedResourceGroup},${c.dimensions[0]},1,23\n`;
    const r = await runScript("2-emit-meter.mts", ["--file", await file("usage.csv", text), "--json"], { env });
    assert.is(r.code, 1, describe(r));
    assert.equal(JSON.parse(r.stdout).counts, { Expired: 1 });
    assert.is(await meteringCalls(), before + 1, "one call, no retry");
    const { ledger } = await loadLedger({ auditPath });
    assert.is(ledger.unresolved().length, 0, "Expired is final");
  } finally {
    await admin(sb, "POST", "/clock", { offsetMs: 0 });
    await admin(sb, "PATCH", "/options", { entra: { clockSkewS: 300 } });
  }
});

B("two runs at once over overlapping files: each event sent once, the log intact", async () => {
  const hour = hourBack(9);
  const a = fleetCsv(customers.slice(0, 4), { hour });
  // Same quantities for the same customer in both files (index in the whole fleet).
  const b = fleetCsv(customers.slice(2), { hour, quantityOf: (ci, di) => ci + 2 + di + 1 });
  await admin(sb, "DELETE", "/requests");
  const [ra, rb] = await Promise.all([
    runScript("2-emit-meter.mts", ["--file", await file("a.csv", a.csv), "--json"], { env }),
    runScript("2-emit-meter.mts", ["--file", await file("b.csv", b.csv), "--json"], { env }),
  ]);
  assert.is(ra.code, 0, describe(ra));
  assert.is(rb.code, 0, describe(rb));
  const union = customers.length * customers[0].dimensions.length;
  const evs = (await events()).filter((e) => Date.parse(e.effectiveStartTime) === hour);
  assert.is(evs.length, union);
  assert.is(new Set(evs.map(keyOf)).size, union);
  // Sent once: the two reports together sent each overlapping event once and skipped it once.
  const reports = [JSON.parse(ra.stdout), JSON.parse(rb.stdout)];
  const sent = reports.flatMap((rep) => rep.events.filter((e: { sent: boolean }) => e.sent));
  assert.is(sent.length, union, "every event of the union sent exactly once");
  assert.is(reports.reduce((n, rep) => n + (rep.counts.AlreadyAccepted ?? 0), 0), a.rows + b.rows - union);
  // No emulator answer was a Duplicate: nothing went out twice.
  assert.ok(sent.every((e: { status: string }) => e.status === "Accepted"));
  // Every line of the log is whole JSON.
  const lines = (await readAuditText()).split("\n").filter(Boolean);
  for (const l of lines) JSON.parse(l);
});

B("--dry-run of a file: says what would be sent, sends and writes nothing", async () => {
  const audit = await readAuditText();
  const calls = await meteringCalls();
  const { csv } = fleetCsv(customers, { hour: hourBack(10) });
  const r = await runScript("2-emit-meter.mts", ["--file", await file("usage.csv", csv), "--dry-run"], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stdout, /Would send 30 event\(s\) \(0 resent\) for 6 customer\(s\) in 6 batch call\(s\)/);
  assert.is(await readAuditText(), audit);
  assert.is(await meteringCalls(), calls);
});

B.after(async () => {
  await sb.stop();
});

B.run();
