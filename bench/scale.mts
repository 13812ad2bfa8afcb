#!/usr/bin/env node
// Usage at scale against the sandbox: 10,000 events for 400 customers (25 dimensions each)
// through `2-emit-meter.mts --file`, per runtime. Prints wall time, events per second, round
// trips per service from the sandbox's request counters, and the client's peak memory; then
// the one-event-at-a-time path (one process, one signature, one token exchange and one
// usageEvent call per event, like the bash original) on a sample, as the reference. Per run:
// audit bytes per event, and the audit writes (one fsync each) and their fsync time. Beside the
// per-customer path, the central path: the same events with `--as publisher-app` (one Key Vault
// signature and one token exchange for every customer), its round trips and the ratios.
//
// With --latency kv=MS,token=MS,metering=MS, the sandbox's delay faults (rate 1.0) hold every Key
// Vault signature, token exchange and batchUsageEvent call that long, as Azure's network would,
// and each runtime runs at --concurrency 8, 32, 64 and the default (--concurrency LIST: others): wall time beside the lower
// bound ceil(customers / c) × (kv + token + metering) and their ratio (no reference run).
// Before that, and without a sandbox: planning 100,000 events for 4,000 customers (25 dimensions),
// a dry run's CPU time and peak memory (bench/plan.mts; --plan-customers N, 0 to skip).
//
// Usage: npm run bench [-- --customers N --dimensions N --reference N --runtime node20|node24|deno
//                          --latency kv=60,token=150,metering=250 --plan-customers N --aggregate-records N
//                          --against DIR]
// Then, also without a sandbox: --aggregate-records raw records (default 1,000,000; 0 to skip)
// summed by 2-emit-meter --aggregate --dry-run (bench/input.mts --aggregate): records per CPU second, peak memory.
// --against DIR runs the 2-emit-meter.mts of another checkout (a before/after comparison).
// --slow-fsync MS puts the data directory (config.json, audit.jsonl) on a FUSE file system whose
// every fsync waits MS first (bench/slow-fsync-fs.py; root and Debian's python3-fusepy), as
// Cloud Shell's clouddrive (SMB: each fsync a network round trip) does.
// Seeds its own world, starts its own sandbox in a temporary directory, stops it at the end.
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { installedRuntimes, tsRunner } from "../sandbox/core/runtime.mts";
import { loadWorldSeed } from "../sandbox/main.mts";
import { fleetCsv, fleetCustomers, fleetSeed, setupFleet } from "../test/helpers/fleet.mts";
import { cpuSeconds, loadAverage, runMeasured } from "./measure.mts";
import { measurePlan } from "./plan.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const { values } = parseArgs({
  options: {
    customers: { type: "string", default: "400" },
    dimensions: { type: "string", default: "25" },
    reference: { type: "string" },
    runtime: { type: "string", multiple: true },
    latency: { type: "string" },
    "plan-customers": { type: "string", default: "4000" },
    "aggregate-records": { type: "string", default: "1000000" },
    against: { type: "string" },
    "slow-fsync": { type: "string" },
    concurrency: { type: "string", default: "8,32,64,default" },
  },
  strict: true,
});
const latency = values.latency === undefined ? undefined : parseLatency(values.latency);
const nCustomers = Number(values.customers), nDims = Number(values.dimensions), nRef = Number(values.reference ?? (latency ? 0 : 100));
const nPlan = Number(values["plan-customers"]);
const nAggregate = Number(values["aggregate-records"]);
if (![nCustomers, nDims].every((n) => Number.isInteger(n) && n >= 1) || ![nRef, nPlan, nAggregate].every((n) => Number.isInteger(n) && n >= 0) || nDims > 30) {
  process.stderr.write("--customers: a positive integer; --reference, --plan-customers, --aggregate-records: integers >= 0; --dimensions: 1..30 (Partner Center's limit)\n");
  process.exit(2);
}
const slowFsyncMs = values["slow-fsync"] === undefined ? undefined : Number(values["slow-fsync"]);
if (slowFsyncMs !== undefined && !(Number.isInteger(slowFsyncMs) && slowFsyncMs >= 0)) {
  process.stderr.write("--slow-fsync: milliseconds, an integer >= 0\n");
  process.exit(2);
}
const concurrencies = values.concurrency.split(",").map((c) => c.trim() === "default" ? undefined : Number(c));
if (!concurrencies.every((c) => c === undefined || (Number.isInteger(c) && c >= 1 && c <= 64))) {
  process.stderr.write("--concurrency: a comma-separated list of 1..64 and `default`\n");
  process.exit(2);
}
const EMIT = join(values.against ? resolve(values.against) : ROOT, "scripts", "2-emit-meter.mts");

/** `kv=60,token=150,metering=250` → delays in ms; every one of the three is needed. */
function parseLatency(text: string): { kv: number; token: number; metering: number } {
  const parts = Object.fromEntries(text.split(",").map((p) => p.split("=").map((x) => x.trim())));
  const out = { kv: Number(parts.kv), token: Number(parts.token), metering: Number(parts.metering) };
  if (Object.keys(parts).some((k) => !(k in out)) || !Object.values(out).every((n) => Number.isInteger(n) && n >= 0)) {
    process.stderr.write(`Cannot use --latency ${JSON.stringify(text)}: expected kv=MS,token=MS,metering=MS\n`);
    process.exit(2);
  }
  return out;
}
const allRuntimes = installedRuntimes(ROOT);
const chosen = values.runtime ?? Object.keys(allRuntimes);
for (const r of chosen) if (!allRuntimes[r]) {
  process.stderr.write(`unknown or missing runtime ${r} (have: ${Object.keys(allRuntimes).join(", ")})\n`);
  process.exit(2);
}

/**
 * Connections set up at once. Each waits for its deployment as az does (ARM's Retry-After: 1 s
 * before the first poll), so the setup's wall time is about customers / this seconds.
 */
const FLEET_SETUP_CONCURRENCY = 64;

const say = (text: string) => process.stderr.write(`${text}\n`);

/** Mounts bench/slow-fsync-fs.py over a directory of `dir`; throws saying why when it cannot (not root, no FUSE, no fusepy). */
async function mountSlowFsync(dir: string, fsyncMs: number): Promise<{ dir: string; unmount: () => void }> {
  const { mkdir } = await import("node:fs/promises");
  const { spawn } = await import("node:child_process");
  const backing = join(dir, "slow-backing"), mountpoint = join(dir, "slow-mount");
  await mkdir(backing, { recursive: true });
  await mkdir(mountpoint, { recursive: true });
  const child = spawn("/usr/bin/python3", [join(ROOT, "bench", "slow-fsync-fs.py"), backing, mountpoint, String(fsyncMs)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  for (let i = 0; i < 50; i++) {
    if (spawnSync("mountpoint", ["-q", mountpoint]).status === 0) {
      return { dir: mountpoint, unmount: () => void spawnSync("umount", [mountpoint]) };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error(`Cannot mount the slow-fsync file system (root, /dev/fuse and Debian's python3-fusepy are needed): ${stderr.trim() || "it did not come up in 5 s"}`);
}
const print = (text: string) => process.stdout.write(`${text}\n`);
const timed = (rt: string[], args: string[], env: Record<string, string>) => runMeasured([...rt, ...args], { cwd: ROOT, env });

if (nPlan > 0) {
  for (const name of chosen) {
    const r = await measurePlan({ customers: nPlan, dimensions: 25, runtime: allRuntimes[name], script: EMIT });
    print(`plan (${name})         ${r.rows} events / ${nPlan} customers / 25 dimensions: CPU ${r.cpuS.toFixed(2)} s (goal < 3 s), peak memory ${r.peakMb.toFixed(0)} MB, wall ${r.wallS.toFixed(2)} s (2-emit-meter --dry-run, no sandbox; load average ${loadAverage()})`);
  }
}

// Aggregation (2-emit-meter --aggregate --dry-run, no sandbox): raw records per CPU second and
// peak memory, measured and printed by bench/input.mts (npm run bench:input -- --aggregate).
if (nAggregate > 0) {
  const args = ["--import", "tsx", join(ROOT, "bench", "input.mts"), "--aggregate", "--rows", String(nAggregate), ...chosen.flatMap((name) => ["--runtime", name])];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) process.exitCode = 1;
}

const sbDir = await mkdtemp(join(tmpdir(), "metering-bench-scale-"));
const cli = join(ROOT, "sandbox", "cli.mts");
const base = await loadWorldSeed();
const seed = fleetSeed(base, { customers: nCustomers, dimensions: nDims });
// The offer's technical configuration: the publisher app of the central path (--as publisher-app).
const publisherAppId = base.offers[0].technicalConfiguration!.appId;
seed.offers[0].technicalConfiguration = { tenantId: seed.isv.tenantId, appId: publisherAppId };
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
let unmount = () => {};
try {
  let dataDir = join(sbDir, "data");
  if (slowFsyncMs !== undefined) {
    const mounted = await mountSlowFsync(sbDir, slowFsyncMs);
    unmount = mounted.unmount;
    dataDir = join(mounted.dir, "data");
    say(`Data directory on a FUSE mount whose fsync waits ${slowFsyncMs} ms: ${dataDir}`);
  }
  const info = JSON.parse(await readFile(join(sbDir, "sb", "sandbox.json"), "utf8"));
  const env: Record<string, string> = { ...process.env as Record<string, string>, AZURE_HTTP_USER_AGENT: "", METERING_DATA_DIR: dataDir };
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
  // The publisher app for the central path: its federated credential, as a user sets it up once.
  const appSetup = await timed(allRuntimes[chosen[0]], [join(ROOT, "scripts", "0-publisher-app.mts"), "--app-id", publisherAppId], env);
  if (appSetup.code !== 0) throw new Error(`0-publisher-app failed:\n${appSetup.out.slice(-3000)}`);
  const customers = fleetCustomers(seed);

  const counts = async () => {
    const c = await adminGet<Record<string, Record<string, number>>>("/requests");
    const sum = (svc: string, re: RegExp) => Object.entries(c[svc] ?? {}).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
    const tokens = (await adminGet<Array<{ aud: string; grant: string }>>("/tokens")).filter((t) => t.grant === "client_assertion").length;
    return { sign: sum("keyvault", /\/sign$/), keyGet: sum("keyvault", /^GET \/keys\//), keyvault: sum("keyvault", /./), token: sum("entra", /oauth2.*token/), tokensIssued: tokens, batch: sum("metering", /batchUsageEvent/), single: sum("metering", /POST \/api\/usageEvent$/) };
  };
  const rssMb = (pid: number | undefined) => {
    const m = pid ? /VmRSS:\s+(\d+)/.exec(spawnSync("cat", [`/proc/${pid}/status`], { encoding: "utf8" }).stdout ?? "") : null;
    return m ? Number(m[1]) / 1024 : 0;
  };

  print(`# ${nCustomers * nDims} events for ${nCustomers} customers (${nDims} dimensions each), ${new Date().toISOString()}`);
  print(`fleet setup         ${setupS.toFixed(1)} s (${(setupS * 1000 / nCustomers).toFixed(1)} ms per customer; ISV setup and ${nCustomers} connections, ${FLEET_SETUP_CONCURRENCY} at a time)`);
  print(`fleet setup CPU      sandbox ${setupCpu.sandbox.toFixed(1)} s (${(setupCpu.sandbox * 1000 / nCustomers).toFixed(1)} ms per customer), client ${setupCpu.client.toFixed(1)} s`);
  print(`machine: ${spawnSync("nproc", { encoding: "utf8" }).stdout.trim()} cores; load average ${spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.split(" ").slice(0, 3).join(" ")}`);
  const auditPath = join(env.METERING_DATA_DIR, "audit.jsonl");
  const batchGoal = customers.reduce((n, cu) => n + Math.ceil(cu.dimensions.length / 25), 0);
  let hoursAgo = 1;
  const nextHour = () => {
    if (hoursAgo > 23) throw new Error("Cannot run more than 23 runs in one benchmark: each needs an hour of its own within the API's window (fewer runtimes or concurrencies)");
    return hoursAgo++;
  };

  /** One `2-emit-meter --file --json` run of a fresh hour: wall time, CPU, memory, round trips and the audit log's growth. */
  const emitRun = async (name: string, extra: string[]) => {
    const { csv, rows } = fleetCsv(customers, { hoursAgo: nextHour() });
    const file = join(sbDir, `usage-${name}.csv`);
    await writeFile(file, csv);
    await fetch(adminUrl + "/requests", { method: "DELETE" });
    const tokensBefore = (await counts()).tokensIssued;
    const auditBefore = await stat(auditPath).then((s) => s.size, () => 0);
    const signCpu0 = (await adminGet<Record<string, number>>("/cpu"))["keyvault.sign"] ?? 0;
    const cpu0 = { sandbox: cpuSeconds(info.pid), azurite: info.azuritePid ? cpuSeconds(info.azuritePid) : 0, client: cpuSeconds(process.pid, true) };
    const r = await timed(allRuntimes[name], [EMIT, "--file", file, "--json", ...extra], env);
    const cpu = {
      sandbox: cpuSeconds(info.pid) - cpu0.sandbox,
      azurite: info.azuritePid ? cpuSeconds(info.azuritePid) - cpu0.azurite : 0,
      client: cpuSeconds(process.pid, true) - cpu0.client,
    };
    if (r.code !== 0) throw new Error(`2-emit-meter --file failed on ${name}:\n${r.out.slice(-3000)}`);
    // The RSA private-key operations of the emulated Key Vault: Key Vault's own work in Azure.
    const signCpu = ((await adminGet<Record<string, number>>("/cpu"))["keyvault.sign"] ?? 0) - signCpu0;
    const c = await counts();
    const json = JSON.parse(r.out.slice(r.out.indexOf("{\n"), r.out.lastIndexOf("}") + 1)) as { counts: Record<string, number>; audit?: { records: number; writes: number; syncMs: number } };
    const auditBytes = (await stat(auditPath)).size - auditBefore;
    // What the run says it used: "…, 64 request(s) at a time" (before issue 18: "…, 8 at a time").
    const slots = Number(/, (\d+) (?:request\(s\) )?at a time/.exec(r.out)?.[1]);
    return { r, rows, cpu, signCpu, c, tokens: c.tokensIssued - tokensBefore, accepted: json.counts.Accepted ?? 0, audit: json.audit, auditBytes, slots };
  };
  const auditLine = (x: Awaited<ReturnType<typeof emitRun>>) =>
    `${(x.auditBytes / x.rows).toFixed(0)} bytes per event; ${x.audit ? `${x.audit.records} records in ${x.audit.writes} writes (one fsync each), fsync ${(x.audit.syncMs / 1000).toFixed(2)} s in all, ${(x.audit.syncMs / x.audit.writes).toFixed(2)} ms each` : "fsync count not reported by this 2-emit-meter"}`;

  if (latency) {
    const sum = latency.kv + latency.token + latency.metering;
    await fetch(adminUrl + "/faults", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify([
        { service: "keyvault", method: "POST", route: "/keys/:name/:version/sign", kind: "delay", delayMs: latency.kv, rate: 1 },
        { service: "entra", method: "POST", route: "/:tenant/oauth2/v2.0/token", kind: "delay", delayMs: latency.token, rate: 1 },
        { service: "metering", method: "POST", route: "/api/batchUsageEvent", kind: "delay", delayMs: latency.metering, rate: 1 },
      ]),
    });
    print("");
    print(`## latency: Key Vault sign ${latency.kv} ms, Entra token ${latency.token} ms, batchUsageEvent ${latency.metering} ms (sandbox delay faults, rate 1.0)${values.against ? `; 2-emit-meter of ${values.against}` : ""}`);
    print("| runtime | --concurrency | wall time | lower bound ceil(customers / c) × " + sum + " ms | ratio | CPU sandbox / client | client peak | key reads | audit | load average |");
    print("|---|---|---|---|---|---|---|---|---|---|");
    for (const name of chosen) {
      for (const c of concurrencies) {
        const x = await emitRun(name, c === undefined ? [] : ["--concurrency", String(c)]);
        const used = c ?? x.slots;
        const boundS = Math.ceil(nCustomers / used) * sum / 1000;
        const wallS = x.r.ms / 1000;
        if (x.accepted !== x.rows) throw new Error(`${x.accepted} of ${x.rows} accepted on ${name}, --concurrency ${c ?? "default"}`);
        print(`| ${name} | ${c ?? `default (${used})`} | ${wallS.toFixed(2)} s | ${boundS.toFixed(2)} s | ${(wallS / boundS).toFixed(2)} | ${x.cpu.sandbox.toFixed(1)} s / ${x.cpu.client.toFixed(1)} s | ${x.r.peakMb.toFixed(0)} MB | ${x.c.keyGet} | ${auditLine(x)} | ${loadAverage()} |`);
      }
    }
    await fetch(adminUrl + "/faults", { method: "DELETE" });
  } else {
    for (const name of chosen) {
      const rt = allRuntimes[name];
      const x = await emitRun(name, []);
      const { r, rows, cpu, c } = x;
      print("");
      print(`## batch path, ${name}`);
      print(`wall time           ${(r.ms / 1000).toFixed(2)} s (process start to exit, ${rows} events, ${x.accepted} accepted, ${x.slots} request(s) at a time)`);
      print(`events per second   ${(rows / (r.ms / 1000)).toFixed(0)}`);
      print(`Key Vault sign      ${c.sign} requests, ${c.keyGet} key reads (goal: 1, one assertion for every customer's exchange, plus Key Vault's authentication challenge; one read)`);
      print(`Entra token         ${c.token} requests, ${x.tokens} tokens issued (goal: ${nCustomers}, one per customer)`);
      print(`metering            ${c.batch} batchUsageEvent calls (goal: ${batchGoal}), ${c.single} usageEvent calls`);
      print(`CPU                 sandbox ${cpu.sandbox.toFixed(2)} s, client ${cpu.client.toFixed(2)} s (sandbox/client ${(cpu.sandbox / Math.max(cpu.client, 0.01)).toFixed(2)}; Azurite ${cpu.azurite.toFixed(2)} s; user + system CPU during the timed run)`);
      print(`sandbox CPU detail  Key Vault's RSA signatures ${x.signCpu.toFixed(2)} s; the rest ${(cpu.sandbox - x.signCpu).toFixed(2)} s (the rest/client ${((cpu.sandbox - x.signCpu) / Math.max(cpu.client, 0.01)).toFixed(2)})`);
      print(`client peak memory  ${r.peakMb.toFixed(0)} MB (VmHWM of the 2-emit-meter process, sampled every 20 ms)`);
      print(`audit log           ${auditLine(x)}`);
      print(`sandbox memory      ${(rssMb(info.pid) + rssMb(info.azuritePid)).toFixed(0)} MB after the run (sandbox ${rssMb(info.pid).toFixed(0)} MB + Azurite ${rssMb(info.azuritePid).toFixed(0)} MB)`);

      // The central path: the same events as the publisher app, one signature and one token for all
      // (not with --against: an older 2-emit-meter may not know --as).
      if (values.against) print(`## central path: skipped with --against`);
      else {
        const central = await emitRun(name, ["--as", "publisher-app"]);
        const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "-");
        print(`## central path (--as publisher-app), ${name}`);
        print(`wall time           ${(central.r.ms / 1000).toFixed(2)} s (${central.rows} events, ${central.accepted} accepted; per-customer path / central ${ratio(r.ms, central.r.ms)})`);
        print(`Key Vault sign      ${central.c.sign} requests (goal: 1; per-customer path ${c.sign}, ${ratio(c.sign, central.c.sign)}x as many)`);
        print(`Entra token         ${central.c.token} requests, ${central.tokens} tokens issued (goal: 1; per-customer path ${x.tokens}, ${ratio(x.tokens, central.tokens)}x as many)`);
        print(`metering            ${central.c.batch} batchUsageEvent calls (goal: ${batchGoal}, as the per-customer path)`);
        print(`round trips         ${central.c.keyvault + central.c.token + central.c.batch + central.c.single} (Key Vault ${central.c.keyvault}, Entra ${central.c.token}, metering ${central.c.batch + central.c.single}); per-customer path ${c.keyvault + c.token + c.batch + c.single} (${ratio(c.keyvault + c.token + c.batch + c.single, central.c.keyvault + central.c.token + central.c.batch + central.c.single)}x)`);
        print(`CPU                 sandbox ${central.cpu.sandbox.toFixed(2)} s, client ${central.cpu.client.toFixed(2)} s (per-customer path / central: sandbox ${ratio(cpu.sandbox, central.cpu.sandbox)}, client ${ratio(cpu.client, central.cpu.client)})`);
        print(`client peak memory  ${central.r.peakMb.toFixed(0)} MB`);
        if (central.accepted !== central.rows) throw new Error(`${central.accepted} of ${central.rows} accepted on the central path, ${name}`);
      }
      if (nRef === 0) continue;

      // The reference: one event per process, as the bash original sends them.
      await fetch(adminUrl + "/requests", { method: "DELETE" });
      const refHours = nextHour();
      const t1 = performance.now();
      for (let i = 0; i < nRef; i++) {
        const cu = customers[i % customers.length];
        const dim = cu.dimensions[Math.floor(i / customers.length) % cu.dimensions.length];
        const one = await timed(rt, [EMIT, cu.subscriptionId, cu.managedResourceGroup, String(refHours), dim, "1"], env);
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
  }
} finally {
  unmount();
  spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "stop", "--dir", join(sbDir, "sb")], { encoding: "utf8" });
  await rm(sbDir, { recursive: true, force: true });
}
