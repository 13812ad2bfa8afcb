#!/usr/bin/env node
// Usage at scale against the sandbox: 10,000 events for 400 customers (25 dimensions each)
// through `2-emit-meter.mts --file`, per runtime. Prints wall time, events per second, round
// trips per service from the sandbox's request counters, and the client's peak memory; then
// the one-event-at-a-time path (one process, one signature, one token exchange and one
// usageEvent call per event, like the bash original) on a sample, as the reference.
//
// Usage: npm run bench [-- --customers N --dimensions N --reference N --runtime node20|node24|deno]
// Seeds its own world, starts its own sandbox in a temporary directory, stops it at the end.
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { installedRuntimes, tsRunner } from "../sandbox/core/runtime.mts";
import { loadWorldSeed } from "../sandbox/main.mts";
import { fleetCsv, fleetCustomers, fleetSeed, setupFleet } from "../test/helpers/fleet.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const { values } = parseArgs({
  options: {
    customers: { type: "string", default: "400" },
    dimensions: { type: "string", default: "25" },
    reference: { type: "string", default: "100" },
    runtime: { type: "string", multiple: true },
  },
  strict: true,
});
const nCustomers = Number(values.customers), nDims = Number(values.dimensions), nRef = Number(values.reference);
if (![nCustomers, nDims, nRef].every((n) => Number.isInteger(n) && n >= 1) || nDims > 30) {
  process.stderr.write("--customers, --reference: positive integers; --dimensions: 1..30 (Partner Center's limit)\n");
  process.exit(2);
}
const allRuntimes = installedRuntimes(ROOT);
const chosen = values.runtime ?? Object.keys(allRuntimes);
for (const r of chosen) if (!allRuntimes[r]) {
  process.stderr.write(`unknown or missing runtime ${r} (have: ${Object.keys(allRuntimes).join(", ")})\n`);
  process.exit(2);
}

/** CPU seconds (user + system) of a process from /proc/PID/stat; `children` adds its waited-for children's (cutime + cstime). */
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
function cpuSeconds(pid: number, children = false): number {
  const stat = spawnSync("cat", [`/proc/${pid}/stat`], { encoding: "utf8" }).stdout ?? "";
  // Fields after the parenthesised command name: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  if (f.length < 15) return 0;
  return (f[11] + f[12] + (children ? f[13] + f[14] : 0)) / CLK_TCK;
}

/**
 * Connections set up at once. Each waits for its deployment as az does (ARM's Retry-After: 1 s
 * before the first poll), so the setup's wall time is about customers / this seconds.
 */
const FLEET_SETUP_CONCURRENCY = 64;

const say = (text: string) => process.stderr.write(`${text}\n`);
const print = (text: string) => process.stdout.write(`${text}\n`);

/** Runs a script; samples the child's peak RSS (VmHWM) from /proc until it exits. */
function timed(rt: string[], args: string[], env: Record<string, string>): Promise<{ ms: number; code: number | null; peakMb: number; out: string }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(rt[0], [...rt.slice(1), ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    let peakKb = 0;
    const sample = async () => {
      const status = await readFile(`/proc/${child.pid}/status`, "utf8").catch(() => "");
      const m = /VmHWM:\s+(\d+)/.exec(status);
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    };
    const timer = setInterval(sample, 20);
    child.on("exit", (code) => {
      clearInterval(timer);
      res({ ms: performance.now() - t0, code, peakMb: peakKb / 1024, out });
    });
  });
}

const sbDir = await mkdtemp(join(tmpdir(), "metering-bench-scale-"));
const cli = join(ROOT, "sandbox", "cli.mts");
const seed = fleetSeed(await loadWorldSeed(), { customers: nCustomers, dimensions: nDims });
const worldFile = join(sbDir, "world.json");
await writeFile(worldFile, JSON.stringify(seed));
say(`Starting the sandbox with ${nCustomers} customers`);
// BENCH_SANDBOX_NODE_OPTIONS: node flags added for the sandbox start (e.g. --import ./bench/cpu-profile.mts, which profiles the sandbox process).
const sandboxEnv = process.env.BENCH_SANDBOX_NODE_OPTIONS ? { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${process.env.BENCH_SANDBOX_NODE_OPTIONS}`.trim() } : process.env;
const start = spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "start", "--dir", join(sbDir, "sb"), "--world", worldFile], { encoding: "utf8", env: sandboxEnv });
if (start.status !== 0) {
  process.stderr.write(start.stdout + start.stderr);
  process.exit(1);
}
try {
  const info = JSON.parse(await readFile(join(sbDir, "sb", "sandbox.json"), "utf8"));
  const env: Record<string, string> = { ...process.env as Record<string, string>, AZURE_HTTP_USER_AGENT: "", METERING_DATA_DIR: join(sbDir, "data") };
  for (const m of (await readFile(join(sbDir, "sb", "env"), "utf8")).matchAll(/^export (\w+)='([^']*)'$/gm)) env[m[1]] = m[2];
  env.PATH = `${join(sbDir, "sb", "bin")}:${process.env.PATH}`;
  const adminUrl = info.endpoints.admin as string;
  const adminGet = async <T,>(path: string): Promise<T> => (await fetch(adminUrl + path)).json() as Promise<T>;
  const t0 = Date.now();
  const setupCpu0 = { sandbox: cpuSeconds(info.pid), client: cpuSeconds(process.pid, true) };
  let lastSaid = 0;
  await setupFleet({ env, seed, concurrency: FLEET_SETUP_CONCURRENCY, onProgress: (n, total) => {
    if (Date.now() - lastSaid > 5000 || n === total) {
      lastSaid = Date.now();
      say(`  connected ${n}/${total} customers`);
    }
  } });
  const setupS = (Date.now() - t0) / 1000;
  // The setup's client is this process (connections in-process) plus the two setup scripts it ran.
  const setupCpu = { sandbox: cpuSeconds(info.pid) - setupCpu0.sandbox, client: cpuSeconds(process.pid, true) - setupCpu0.client };
  say(`Fleet ready in ${setupS.toFixed(1)} s (ISV setup and ${nCustomers} connections; not timed below)`);
  const customers = fleetCustomers(seed);

  const counts = async () => {
    const c = await adminGet<Record<string, Record<string, number>>>("/requests");
    const sum = (svc: string, re: RegExp) => Object.entries(c[svc] ?? {}).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
    const tokens = (await adminGet<Array<{ aud: string; grant: string }>>("/tokens")).filter((t) => t.grant === "client_assertion").length;
    return { sign: sum("keyvault", /\/sign$/), keyvault: sum("keyvault", /./), token: sum("entra", /oauth2.*token/), tokensIssued: tokens, batch: sum("metering", /batchUsageEvent/), single: sum("metering", /POST \/api\/usageEvent$/) };
  };
  const rssMb = (pid: number | undefined) => {
    const m = pid ? /VmRSS:\s+(\d+)/.exec(spawnSync("cat", [`/proc/${pid}/status`], { encoding: "utf8" }).stdout ?? "") : null;
    return m ? Number(m[1]) / 1024 : 0;
  };

  print(`# ${nCustomers * nDims} events for ${nCustomers} customers (${nDims} dimensions each), ${new Date().toISOString()}`);
  print(`fleet setup         ${setupS.toFixed(1)} s (${(setupS * 1000 / nCustomers).toFixed(1)} ms per customer; ISV setup and ${nCustomers} connections, ${FLEET_SETUP_CONCURRENCY} at a time)`);
  print(`fleet setup CPU      sandbox ${setupCpu.sandbox.toFixed(1)} s (${(setupCpu.sandbox * 1000 / nCustomers).toFixed(1)} ms per customer), client ${setupCpu.client.toFixed(1)} s`);
  print(`machine: ${spawnSync("nproc", { encoding: "utf8" }).stdout.trim()} cores; load average ${spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.split(" ").slice(0, 3).join(" ")}`);
  let hoursAgo = 1;
  for (const name of chosen) {
    const rt = allRuntimes[name];
    const { csv, rows } = fleetCsv(customers, { hoursAgo: hoursAgo++ });
    const file = join(sbDir, `usage-${name}.csv`);
    await writeFile(file, csv);
    await fetch(adminUrl + "/requests", { method: "DELETE" });
    const tokensBefore = (await counts()).tokensIssued;
    const signCpu0 = (await adminGet<Record<string, number>>("/cpu"))["keyvault.sign"] ?? 0;
    const cpu0 = { sandbox: cpuSeconds(info.pid), azurite: info.azuritePid ? cpuSeconds(info.azuritePid) : 0, client: cpuSeconds(process.pid, true) };
    const r = await timed(rt, [join(ROOT, "scripts", "2-emit-meter.mts"), "--file", file], env);
    const cpu = {
      sandbox: cpuSeconds(info.pid) - cpu0.sandbox,
      azurite: info.azuritePid ? cpuSeconds(info.azuritePid) - cpu0.azurite : 0,
      client: cpuSeconds(process.pid, true) - cpu0.client,
    };
    if (r.code !== 0) throw new Error(`2-emit-meter --file failed on ${name}:\n${r.out.slice(-3000)}`);
    // The RSA private-key operations of the emulated Key Vault: Key Vault's own work in Azure.
    const signCpu = ((await adminGet<Record<string, number>>("/cpu"))["keyvault.sign"] ?? 0) - signCpu0;
    const c = await counts();
    const accepted = /Accepted\s+(\d+)/.exec(r.out)?.[1];
    print("");
    print(`## batch path, ${name}`);
    print(`wall time           ${(r.ms / 1000).toFixed(2)} s (process start to exit, ${rows} events, ${accepted ?? "?"} accepted)`);
    print(`events per second   ${(rows / (r.ms / 1000)).toFixed(0)}`);
    print(`Key Vault sign      ${c.sign} requests (goal: ${nCustomers}, one signature per customer)`);
    print(`Entra token         ${c.token} requests, ${c.tokensIssued - tokensBefore} tokens issued (goal: ${nCustomers}, one per customer)`);
    print(`metering            ${c.batch} batchUsageEvent calls (goal: ${customers.reduce((n, cu) => n + Math.ceil(cu.dimensions.length / 25), 0)}), ${c.single} usageEvent calls`);
    print(`CPU                 sandbox ${cpu.sandbox.toFixed(2)} s, client ${cpu.client.toFixed(2)} s (sandbox/client ${(cpu.sandbox / Math.max(cpu.client, 0.01)).toFixed(2)}; Azurite ${cpu.azurite.toFixed(2)} s; user + system CPU during the timed run)`);
    print(`sandbox CPU detail  Key Vault's RSA signatures ${signCpu.toFixed(2)} s; the rest ${(cpu.sandbox - signCpu).toFixed(2)} s (the rest/client ${((cpu.sandbox - signCpu) / Math.max(cpu.client, 0.01)).toFixed(2)})`);
    print(`client peak memory  ${r.peakMb.toFixed(0)} MB (VmHWM of the 2-emit-meter process, sampled every 20 ms)`);
    print(`sandbox memory      ${(rssMb(info.pid) + rssMb(info.azuritePid)).toFixed(0)} MB after the run (sandbox ${rssMb(info.pid).toFixed(0)} MB + Azurite ${rssMb(info.azuritePid).toFixed(0)} MB)`);

    // The reference: one event per process, as the bash original sends them.
    await fetch(adminUrl + "/requests", { method: "DELETE" });
    const refHours = hoursAgo++;
    const t1 = performance.now();
    for (let i = 0; i < nRef; i++) {
      const cu = customers[i % customers.length];
      const dim = cu.dimensions[Math.floor(i / customers.length) % cu.dimensions.length];
      const one = await timed(rt, [join(ROOT, "scripts", "2-emit-meter.mts"), cu.subscriptionId, cu.managedResourceGroup, String(refHours), dim, "1"], env);
      if (one.code !== 0) throw new Error(`2-emit-meter (one event) failed on ${name}:\n${one.out.slice(-3000)}`);
    }
    const refMs = performance.now() - t1;
    const rc = await counts();
    const refRate = nRef / (refMs / 1000);
    const batchRate = rows / (r.ms / 1000);
    print(`## one event at a time, ${name} (reference, ${nRef} events)`);
    print(`events per second   ${refRate.toFixed(2)} (${(refMs / nRef).toFixed(0)} ms per event; ${rc.sign} sign, ${rc.token} token, ${rc.single} usageEvent requests)`);
    print(`batch path speed-up ${(batchRate / refRate).toFixed(0)}x; ${rows} events one at a time would take about ${(rows / refRate / 60).toFixed(0)} min`);
  }
} finally {
  spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "stop", "--dir", join(sbDir, "sb")], { encoding: "utf8" });
  await rm(sbDir, { recursive: true, force: true });
}
