#!/usr/bin/env node
// How long a 2-emit-meter run spends reading what is already settled, as the audit log ages.
// Writes a synthetic audit.jsonl of `--days` days at `--per-hour` events an hour, in the record
// shapes runSubmission writes (per batch of 25: an intent with the request, an outcome with the
// request, token claims, the API's answer and `events[]`), then loads the ledger the way every
// run does (`loadLedger`: only the tail that can matter) and, for comparison, by reading the
// whole log. Each load runs in its own process so its peak memory is its own.
//
// Usage: npm run bench:audit [-- --days N --per-hour N --keep]
//   --days      age of the log (default 30)
//   --per-hour  events an hour, over all customers (default 2000: 400 customers x 5 dimensions)
//   --keep      keep the generated log (its path is printed)
// Exit codes: 0 done, 1 a load disagreed or failed, 2 usage error.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { scanAuditLog } from "../lib/audit/log.mts";
import { Ledger } from "../lib/metering/ledger.mts";
import { describeUsageRequest, type UsageEvent } from "../lib/metering/api.mts";
import { loadLedger } from "../lib/metering/submission.mts";
import { USAGE_WINDOW_MS } from "../lib/metering/time.mts";
import { tsRunner } from "../sandbox/core/runtime.mts";

const HOUR = 3_600_000;
const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const SELF = join(ROOT, "bench", "audit-log.mts");
const say = (text: string) => process.stderr.write(`${text}\n`);

let values;
try {
  ({ values } = parseArgs({
    options: {
      days: { type: "string", default: "30" },
      "per-hour": { type: "string", default: "2000" },
      keep: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      // internal: load the ledger of FILE in this process and print one JSON line
      load: { type: "string" },
      file: { type: "string" },
      now: { type: "string" },
    },
    strict: true,
  }));
} catch (err) {
  say(`${(err as Error).message}\nUsage: npm run bench:audit [-- --days N --per-hour N --keep]`);
  process.exit(2);
}

if (values.help) {
  process.stdout.write("Usage: npm run bench:audit [-- --days N --per-hour N --keep]\n");
  process.exit(0);
}
if (values.load) {
  // Child mode: one load, its time, what it holds, and this process's peak RSS.
  const now = Number(values.now);
  const sinceMs = now - 2 * USAGE_WINDOW_MS;
  const t0 = performance.now();
  let result: { ms: number; entries: number; records: number; startOffset: number };
  if (values.load === "tail") {
    const { ledger } = await loadLedger({ auditPath: values.file!, now });
    const ms = performance.now() - t0;
    // loadLedger does not say how much it read: scan again only to count (not timed).
    const scan = await scanAuditLog({ path: values.file!, sinceMs, onRecord: () => {} });
    result = { ms, entries: ledger.entries.size, records: scan.records, startOffset: scan.startOffset };
  } else {
    const ledger = new Ledger({ sinceMs });
    const scan = await scanAuditLog({ path: values.file!, onRecord: (r) => ledger.add(r) });
    result = { ms: performance.now() - t0, entries: ledger.entries.size, records: scan.records, startOffset: 0 };
  }
  process.stdout.write(`${JSON.stringify({ ...result, peakRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
  process.exit(0);
}

const days = Number(values.days), perHour = Number(values["per-hour"]);
if (!Number.isInteger(days) || days < 1 || days > 400 || !Number.isInteger(perHour) || perHour < 25 || perHour > 100_000) {
  say("--days: 1..400; --per-hour: 25..100000");
  process.exit(2);
}

const dir = await mkdtemp(join(tmpdir(), "metering-bench-audit-"));
const file = join(dir, "audit.jsonl");
const now = Date.parse("2026-11-23T12:30:00Z");
const customers = Array.from({ length: Math.max(1, Math.ceil(perHour / 25)) }, (_, i) => ({
  subscriptionId: randomUUID(), managedResourceGroup: `mrg-${i}`, resourceId: randomUUID(),
  resourceUri: `/subscriptions/${randomUUID()}/resourceGroups/apps-${i}/providers/Microsoft.Solutions/applications/app-${i}`,
}));
const claims = { aud: "20e940b3-4c77-4b0b-9a53-9e16a1b010a7", iss: "https://sts.windows.net/tenant/", oid: randomUUID(), appid: randomUUID(), idtyp: "app", exp: 0, iat: 0 };

say(`Writing ${days} days x ${perHour} events an hour (${(days * 24 * perHour).toLocaleString("en")} events) to ${file}`);
const out = createWriteStream(file);
const write = (record: unknown) => out.write(`${JSON.stringify(record)}\n`) ? undefined : new Promise((r) => out.once("drain", r));
const hours = days * 24;
for (let h = hours; h >= 1; h--) {
  const hourStart = Math.floor((now - h * HOUR) / HOUR) * HOUR;
  const sentAt = hourStart + HOUR + 5 * 60_000; // the hourly job runs 5 minutes past the hour
  let left = perHour;
  for (const c of customers) {
    if (left <= 0) break;
    const n = Math.min(25, left);
    left -= n;
    const events: UsageEvent[] = Array.from({ length: n }, (_, d) => ({
      resourceId: c.resourceId, resourceUri: c.resourceUri, planId: "gold", dimension: `dim-${d}`, quantity: 1 + d, effectiveStartTime: new Date(hourStart).toISOString().replace(".000Z", "Z"),
    }));
    const request = describeUsageRequest({ events, baseUrl: "https://marketplaceapi.microsoft.com" });
    const id = randomUUID();
    const customer = { subscriptionId: c.subscriptionId, managedResourceGroup: c.managedResourceGroup };
    const time = new Date(sentAt).toISOString();
    const p1 = write({ time, operation: "batchUsageEvent.intent", id, customer, request });
    if (p1) await p1;
    const result = events.map((e) => ({ usageEventId: randomUUID(), status: "Accepted", messageTime: time, ...e }));
    const p2 = write({
      time, operation: "batchUsageEvent", id, customer, request, tokenClaims: claims,
      response: { status: 200, requestId: request.headers["x-ms-requestid"], correlationId: request.headers["x-ms-correlationid"], body: { count: n, result } },
      events: events.map((e) => ({ key: `${e.resourceId}|${e.dimension}|${e.effectiveStartTime}`, status: "Accepted", state: "accepted", billedQuantity: e.quantity })),
    });
    if (p2) await p2;
  }
  if (h % 24 === 0) process.stderr.write(`\r  ${Math.round((hours - h) / hours * 100)}%`);
}
await new Promise<void>((r) => out.end(() => r()));
const size = (await stat(file)).size;
say(`\r  ${(size / 2 ** 20).toFixed(0)} MiB written`);

function load(mode: "tail" | "full"): Promise<{ ms: number; entries: number; records: number; startOffset: number; peakRssMb: number }> {
  return new Promise((res, rej) => {
    const [cmd, ...pre] = tsRunner();
    const child = spawn(cmd, [...pre, SELF, "--load", mode, "--file", file, "--now", String(now)], { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    child.stdout.on("data", (d) => (text += d));
    child.on("exit", (code) => (code === 0 ? res(JSON.parse(text)) : rej(new Error(`load ${mode} exited with ${code}`))));
  });
}

const tail = await load("tail");
const full = await load("full");
const mb = (n: number) => `${n.toFixed(0)} MB`;
process.stdout.write([
  `# audit.jsonl of ${days} days, ${perHour} events an hour: ${(size / 2 ** 20).toFixed(0)} MiB, ${(hours * Math.ceil(perHour / 25) * 2).toLocaleString("en")} records`,
  `machine: ${(await import("node:os")).cpus().length} cores; load average ${(await import("node:os")).loadavg().map((x) => x.toFixed(2)).join(" ")}`,
  `loadLedger (tail, as every run)  ${(tail.ms / 1000).toFixed(2)} s, read ${((size - tail.startOffset) / 2 ** 20).toFixed(1)} MiB (${tail.records.toLocaleString("en")} records), ${tail.entries.toLocaleString("en")} ledger entries, peak ${mb(tail.peakRssMb)}`,
  `whole log (before this change)   ${(full.ms / 1000).toFixed(2)} s, read ${(size / 2 ** 20).toFixed(1)} MiB (${full.records.toLocaleString("en")} records), ${full.entries.toLocaleString("en")} ledger entries, peak ${mb(full.peakRssMb)}`,
  `speed-up ${(full.ms / tail.ms).toFixed(0)}x`,
].join("\n") + "\n");
if (values.keep) say(`kept ${file}`);
else await rm(dir, { recursive: true, force: true });
if (tail.entries !== full.entries) {
  say(`the two loads disagree: ${tail.entries} vs ${full.entries} ledger entries`);
  process.exit(1);
}
