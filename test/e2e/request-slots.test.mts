// 2-emit-meter --file against the sandbox, as a process, with 30 dimensions per customer (two
// batches each): the batches of all customers share the run's request slots, each customer
// still gets one token and one signature, the Key Vault key is read once (not once or twice per
// request slot of the first wave), and the audit log's outcomes refer to their intents by id.
// Counted at the sandbox; no timing (the benchmark measures time).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin } from "../helpers/sandbox.mts";
import { describe, runScript } from "../helpers/scripts.mts";
import { fleetCsv, startFleet } from "../helpers/fleet.mts";
import { hourBack } from "../helpers/hours.mts";
import { loadLedger } from "../../lib/metering/submission.mts";
import { scanAuditLog, type AuditRecord } from "../../lib/audit/log.mts";

const { sb, env, dataDir, auditPath, customers, events, counters } = await startFleet({ customers: 5, dimensions: 30 });
const sum = (o: Record<string, number> | undefined, re: RegExp) => Object.entries(o ?? {}).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);

const T = suite("2-emit-meter --file: request slots");
T("10 batches of 5 customers at the default concurrency: one key read, one signature, one token per customer, all accepted", async () => {
  await admin(sb, "DELETE", "/requests");
  const { csv, rows } = fleetCsv(customers, { hour: hourBack(2) });
  const path = join(dataDir, "..", `slots-${process.pid}-${Date.now()}.csv`);
  await writeFile(path, csv);
  const r = await runScript("2-emit-meter.mts", ["--file", path, "--json"], { env });
  assert.is(r.code, 0, describe(r));
  assert.match(r.stderr, /150 event\(s\) for 5 customer\(s\), 10 request\(s\) at a time/);
  const report = JSON.parse(r.stdout) as { counts: Record<string, number>; audit: { records: number; writes: number; syncMs: number; bytes: number } };
  assert.equal(report.counts, { Accepted: rows });
  assert.is(report.audit.records, 20, "an intent and an outcome per batch");
  assert.ok(report.audit.writes >= 1 && report.audit.writes <= 20, JSON.stringify(report.audit));
  assert.is((await events()).filter((e) => Date.parse(e.effectiveStartTime) === hourBack(2)).length, rows);
  const c = await counters();
  assert.is(sum(c.metering, /batchUsageEvent/), 10);
  assert.is(sum(c.entra, /oauth2.*token/), customers.length, JSON.stringify(c.entra));
  // One assertion for every customer (plus the Key Vault client's authentication challenge).
  assert.ok(sum(c.keyvault, /sign$/) >= 1 && sum(c.keyvault, /sign$/) <= 2, JSON.stringify(c.keyvault));
  // The signature reads the key once.
  assert.ok(sum(c.keyvault, /^GET \/keys\//) <= 2, `key reads: ${JSON.stringify(c.keyvault)}`);

  const records: AuditRecord[] = [];
  await scanAuditLog({ path: auditPath, onRecord: (rec) => void records.push(rec) });
  const intents = new Map(records.filter((x) => x.operation === "batchUsageEvent.intent").map((x) => [x.id, x]));
  const outcomes = records.filter((x) => x.operation === "batchUsageEvent");
  assert.is(outcomes.length, 10);
  for (const o of outcomes) {
    assert.is(o.request, undefined, "the outcome does not repeat the request");
    assert.ok(intents.get(o.id)?.request, "its intent, found by id, holds it");
  }
  const { ledger } = await loadLedger({ auditPath });
  assert.is(ledger.unresolved().length, 0);
});

T.after(async () => {
  await sb.stop();
});

T.run();
