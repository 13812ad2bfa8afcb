#!/usr/bin/env node
// Measures the product scripts' wall time against the sandbox, per runtime: `2-emit-meter.mts`
// (assertion signed in Key Vault, token exchange, one usage event, audit line) and `--help`.
//
// Usage: npm run bench:emit [-- --runs N --against DIR]   (default 5 runs per runtime and measurement)
// Starts its own sandbox in a temporary directory, sets up the issuer and connects one customer
// first (not timed). Prints the median and the range of the wall time per runtime, and the
// median CPU time (user + system). The first run of each fills Node's compile cache
// (~/.cache/metering-federation); NODE_DISABLE_COMPILE_CACHE=1 measures without it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DENO_PATH, NODE24_PATH, tsRunner } from "../sandbox/core/runtime.mts";
import { childCpuSeconds, loadAverage } from "./measure.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, against: { type: "string" } }, strict: true });
// --against DIR: the scripts of another checkout (before/after comparisons); the sandbox is this one's.
const SCRIPTS = join(values.against ? resolve(values.against) : ROOT, "scripts");
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write("--runs must be a positive integer\n");
  process.exit(2);
}

const runtimes: Record<string, string[]> = { "node20+tsx": ["node", "--import", "tsx"] };
if (existsSync(join(ROOT, NODE24_PATH))) runtimes["node24"] = [join(ROOT, NODE24_PATH)];
if (existsSync(join(ROOT, DENO_PATH))) runtimes["deno"] = [join(ROOT, DENO_PATH), "run", "-A"];

const sbDir = await mkdtemp(join(tmpdir(), "metering-bench-emit-"));
const cli = join(ROOT, "sandbox", "cli.mts");
const start = spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "start", "--dir", sbDir], { encoding: "utf8" });
if (start.status !== 0) {
  process.stderr.write(start.stdout + start.stderr);
  process.exit(1);
}
try {
  const info = JSON.parse(await readFile(join(sbDir, "sandbox.json"), "utf8"));
  const env: Record<string, string> = { ...process.env as Record<string, string>, AZURE_HTTP_USER_AGENT: "", METERING_DATA_DIR: join(sbDir, "data") };
  for (const m of (await readFile(join(sbDir, "env"), "utf8")).matchAll(/^export (\w+)='([^']*)'$/gm)) env[m[1]] = m[2];
  env.PATH = `${join(sbDir, "bin")}:${process.env.PATH}`;
  const c = info.world.customers[0];
  const script = (rt: string[], name: string, args: string[]) => {
    const t0 = performance.now(), cpu0 = childCpuSeconds();
    const r = spawnSync(rt[0], [...rt.slice(1), join(SCRIPTS, name), ...args], { cwd: ROOT, env, encoding: "utf8" });
    return { ms: performance.now() - t0, cpuMs: (childCpuSeconds() - cpu0) * 1000, code: r.status, out: r.stdout + r.stderr };
  };
  for (const [name, args] of [["0-add-defaults.mts", []], ["0-isv-setup.mts", []], ["1-connect-customer.mts", [c.subscriptionId, c.managedResourceGroup]]] as const) {
    const r = script(tsRunner(), name, [...args]);
    if (r.code !== 0) throw new Error(`${name} failed:\n${r.out}`);
  }
  process.stdout.write(`load average ${loadAverage()} (wall times follow the machine's load; CPU seconds, user + system of the process, less so)\n`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const fmt = (xs: number[]) => `median ${(median(xs) / 1000).toFixed(2)} s (min ${(Math.min(...xs) / 1000).toFixed(2)}, max ${(Math.max(...xs) / 1000).toFixed(2)})`;
  let hour = 0;
  for (const [label, rt] of Object.entries(runtimes)) {
    const help: number[] = [], emit: number[] = [], helpCpu: number[] = [], emitCpu: number[] = [];
    for (let i = 0; i < runs; i++) {
      const h = script(rt, "2-emit-meter.mts", ["--help"]);
      if (h.code !== 0) throw new Error(`--help failed on ${label}:\n${h.out}`);
      help.push(h.ms);
      helpCpu.push(h.cpuMs);
      // A fresh hour and dimension each time, so every run is an accepted event, not a duplicate.
      const dim = c.dimensions[i % c.dimensions.length];
      const e = script(rt, "2-emit-meter.mts", [c.subscriptionId, c.managedResourceGroup, String(hour++ % 24), dim, "1"]);
      if (e.code !== 0 && !/Duplicate/.test(e.out)) throw new Error(`emit failed on ${label}:\n${e.out}`);
      emit.push(e.ms);
      emitCpu.push(e.cpuMs);
    }
    process.stdout.write(`${label.padEnd(11)} 2-emit-meter ${fmt(emit)}, CPU median ${(median(emitCpu) / 1000).toFixed(2)} s; --help ${fmt(help)}, CPU median ${(median(helpCpu) / 1000).toFixed(2)} s\n`);
  }
  const events = await (await fetch(`${info.endpoints.admin}/metering/events`)).json() as unknown[];
  process.stdout.write(`metering events recorded by the sandbox: ${events.length}\n`);
  const rssMb = (pid: number | undefined) => {
    if (!pid) return 0;
    const m = /VmRSS:\s+(\d+)/.exec(spawnSync("cat", [`/proc/${pid}/status`], { encoding: "utf8" }).stdout ?? "");
    return m ? Number(m[1]) / 1024 : 0;
  };
  const sbMb = rssMb(info.pid), azMb = rssMb(info.azuritePid);
  process.stdout.write(`sandbox memory after this workload: ${(sbMb + azMb).toFixed(0)} MB (sandbox ${sbMb.toFixed(0)} MB + Azurite ${azMb.toFixed(0)} MB)\n`);
} finally {
  spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "stop", "--dir", sbDir], { encoding: "utf8" });
  await rm(sbDir, { recursive: true, force: true });
}
