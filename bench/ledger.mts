#!/usr/bin/env node
// The ledger's store at scale: 10,000 events for 400 customers (25 dimensions each) through
// `2-emit-meter.mts --file`, with the file ledger (audit.jsonl, one runner) and with the blob
// ledger in Azurite (append blobs, leases) with 1, 2 and 4 runners started together over the
// same file (--shards). Prints wall time and events per second of each, and each beside the file
// ledger's one runner as a ratio (the goal: the blob ledger with 4 runners at least as fast, a
// ratio >= 1), with the machine's load average: on a busy machine the ratios, not the seconds,
// are what compares. Every run is checked: every event accepted, none twice. Beside each: the CPU
// seconds of the runners (with their children: the az stand-in), of the sandbox (this process)
// and of Azurite, and how many cores that keeps busy: on a small machine that sum, not the
// network, is what more runners run into.
//
// With --latency kv=MS,token=MS,metering=MS the sandbox holds every Key Vault signature, token
// exchange and batchUsageEvent call that long (delay faults), as Azure's network would: then
// runners overlap their waits, which on a machine of few cores is where more runners gain.
//
// Usage: npm run bench:ledger [-- --customers N --dimensions N --runtime node20|node24|deno --shards N
//                                 --latency kv=60,token=150,metering=250]
// Seeds its own world, starts its own sandbox (with Azurite) in a temporary directory, stops it.
// BENCH_CLIENT_NODE_OPTIONS: node flags for the runners (e.g. --import of a preload that profiles
// them), with CPU_PROFILE_DIR and CPU_PROFILE_MATCH passed on.
import { writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { installedRuntimes } from "../sandbox/core/runtime.mts";
import { fleetCsv, startFleet } from "../test/helpers/fleet.mts";
import { childCpuSeconds, cpuSeconds, loadAverage, runMeasured } from "./measure.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const { values } = parseArgs({
  options: {
    customers: { type: "string", default: "400" },
    dimensions: { type: "string", default: "25" },
    runtime: { type: "string" },
    shards: { type: "string", default: "16" },
    latency: { type: "string" },
  },
  strict: true,
});
const nCustomers = Number(values.customers), nDims = Number(values.dimensions), shards = Number(values.shards);
if (![nCustomers, shards].every((n) => Number.isInteger(n) && n >= 1) || !(Number.isInteger(nDims) && nDims >= 1 && nDims <= 30)) {
  process.stderr.write("--customers and --shards: positive integers; --dimensions: 1..30\n");
  process.exit(2);
}
const runtimes = installedRuntimes(ROOT);
const runtime = values.runtime ?? (runtimes.node24 ? "node24" : "node20");
if (!runtimes[runtime]) {
  process.stderr.write(`unknown or missing runtime ${runtime} (have: ${Object.keys(runtimes).join(", ")}; npm run runtimes installs node24 and deno)\n`);
  process.exit(2);
}
const latency = values.latency === undefined ? undefined : Object.fromEntries(values.latency.split(",").map((p) => p.split("=").map((x) => x.trim()))) as Record<string, string>;
if (latency && !(["kv", "token", "metering"].every((k) => Number.isInteger(Number(latency[k])) && Number(latency[k]) >= 0) && Object.keys(latency).length === 3)) {
  process.stderr.write(`Cannot use --latency ${JSON.stringify(values.latency)}: expected kv=MS,token=MS,metering=MS\n`);
  process.exit(2);
}
const print = (text: string) => process.stdout.write(`${text}\n`);
const say = (text: string) => process.stderr.write(`${text}\n`);

say(`Setting up ${nCustomers} customers…`);
const { sb, env, customers, events, dataDir } = await startFleet({ customers: nCustomers, dimensions: nDims });
let hoursAgo = 0;
let ledgers = 0;
const profiling: Record<string, string> = process.env.BENCH_CLIENT_NODE_OPTIONS
  ? Object.fromEntries(Object.entries({ NODE_OPTIONS: process.env.BENCH_CLIENT_NODE_OPTIONS, CPU_PROFILE_DIR: process.env.CPU_PROFILE_DIR, CPU_PROFILE_MATCH: process.env.CPU_PROFILE_MATCH }).filter(([, v]) => v !== undefined) as Array<[string, string]>)
  : {};

/** `runners` processes of 2-emit-meter at once over one fresh hour's file; checks the emulator got each event once. */
async function round(label: string, runners: number, ledgerEnv: Record<string, string>, extra: string[]) {
  hoursAgo++;
  const { csv, rows } = fleetCsv(customers, { hoursAgo });
  const file = join(dataDir, "..", `bench-ledger-${process.pid}-${hoursAgo}.csv`);
  await writeFile(file, csv);
  const before = (await events()).length;
  const cpu0 = { runners: childCpuSeconds(), sandbox: cpuSeconds(process.pid), azurite: sb.azuritePid ? cpuSeconds(sb.azuritePid) : 0 };
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: runners }, () =>
    runMeasured([...runtimes[runtime], join(ROOT, "scripts", "2-emit-meter.mts"), "--file", file, "--json", ...extra], { cwd: ROOT, env: { ...env, ...ledgerEnv, ...profiling } })));
  const ms = performance.now() - t0;
  const cpu = {
    runners: childCpuSeconds() - cpu0.runners,
    sandbox: cpuSeconds(process.pid) - cpu0.sandbox,
    azurite: sb.azuritePid ? cpuSeconds(sb.azuritePid) - cpu0.azurite : 0,
  };
  for (const r of results) if (r.code !== 0) throw new Error(`${label}: a runner exited ${r.code}:\n${r.out.slice(-2000)}`);
  const got = (await events()).slice(before);
  const keys = new Set(got.map((e) => `${e.resourceId}|${e.dimension}|${e.effectiveStartTime}`));
  if (got.length !== rows || keys.size !== rows) throw new Error(`${label}: ${got.length} events (${keys.size} distinct) for ${rows} rows`);
  return { label, runners, ms, rows, cpu, peakMb: Math.max(...results.map((r) => r.peakMb)) };
}
const blobLedger = () => ({ METERING_LEDGER: `blob:${sb.endpoints.blob}/ledger/bench-${++ledgers}/` });

try {
  if (latency) {
    await fetch(`${sb.endpoints.admin}/faults`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify([
        { service: "keyvault", method: "POST", route: "/keys/:name/:version/sign", kind: "delay", delayMs: Number(latency.kv), rate: 1 },
        { service: "entra", method: "POST", route: "/:tenant/oauth2/v2.0/token", kind: "delay", delayMs: Number(latency.token), rate: 1 },
        { service: "metering", method: "POST", route: "/api/batchUsageEvent", kind: "delay", delayMs: Number(latency.metering), rate: 1 },
      ]),
    });
  }
  const rowsOf: Array<Awaited<ReturnType<typeof round>>> = [];
  say("file ledger, 1 runner…");
  rowsOf.push(await round("file ledger (audit.jsonl)", 1, {}, []));
  for (const n of [1, 2, 4]) {
    say(`blob ledger, ${n} runner(s)…`);
    rowsOf.push(await round("blob ledger (Azurite)", n, blobLedger(), n > 1 ? ["--shards", String(shards)] : []));
  }
  const base = rowsOf[0].ms;
  print(`# the ledger's store: ${nCustomers * nDims} events for ${nCustomers} customers, ${runtime}${latency ? `, latency Key Vault ${latency.kv} ms, token ${latency.token} ms, batchUsageEvent ${latency.metering} ms` : ", no added latency"}, ${new Date().toISOString()}`);
  print(`machine: load average ${loadAverage()}`);
  print("| ledger | runners | wall time | events/s | vs file ledger, 1 runner | CPU: runners / sandbox / Azurite | peak memory per runner |");
  print("|---|---|---|---|---|---|---|");
  for (const r of rowsOf) {
    const c = r.cpu;
    print(`| ${r.label} | ${r.runners}${r.runners > 1 ? ` (--shards ${shards})` : ""} | ${(r.ms / 1000).toFixed(1)} s | ${Math.round(r.rows / (r.ms / 1000))} | ${(base / r.ms).toFixed(2)}× | ${c.runners.toFixed(1)} / ${c.sandbox.toFixed(1)} / ${c.azurite.toFixed(1)} s (${((c.runners + c.sandbox + c.azurite) / (r.ms / 1000)).toFixed(2)} cores busy of ${availableParallelism()}) | ${r.peakMb.toFixed(0)} MB |`);
  }
  const four = rowsOf.at(-1)!;
  print(`goal (the blob ledger with 4 runners at least as fast as 1 runner with the file ledger): ${four.ms <= base ? "met" : "not met"} (${(base / four.ms).toFixed(2)}×)`);
} finally {
  await sb.stop();
}
