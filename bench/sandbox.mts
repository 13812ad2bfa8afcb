#!/usr/bin/env node
// Measures the sandbox: wall time of `sandbox start` until every service answers, and the
// resident memory of all its processes (sandbox + Azurite) when idle and after a workload.
//
// Usage: npm run bench:sandbox [-- --runs N]   (default 3 runs)
// Prints one line per run and a summary; exit 1 if the sandbox could not start.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { tsRunner } from "../sandbox/core/runtime.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } }, strict: true });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write("--runs must be a positive integer\n");
  process.exit(2);
}

/** Resident set size in MB of pid and all its descendants, from /proc. */
function treeRssMb(pid: number): number {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    const out = spawnSync("pgrep", ["-P", String(pids[i])], { encoding: "utf8" }).stdout.trim();
    if (out) pids.push(...out.split("\n").map(Number));
  }
  let kb = 0;
  for (const p of pids) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(execFileSync("cat", [`/proc/${p}/status`], { encoding: "utf8" }));
      if (m) kb += Number(m[1]);
    } catch { /* exited */ }
  }
  return kb / 1024;
}

const cli = join(ROOT, "sandbox", "cli.mts");
const results: Array<{ startMs: number; idleMb: number; busyMb: number }> = [];
for (let i = 0; i < runs; i++) {
  const dir = await mkdtemp(join(tmpdir(), "metering-bench-sbx-"));
  const t0 = performance.now();
  const r = spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "start", "--dir", dir], { encoding: "utf8" });
  const startMs = performance.now() - t0;
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    process.exitCode = 1;
    break;
  }
  const info = JSON.parse(await readFile(join(dir, "sandbox.json"), "utf8"));
  const idleMb = treeRssMb(info.pid);
  // A burst of 200 admin requests, to see memory under load.
  await Promise.all(Array.from({ length: 200 }, (_, k) =>
    fetch(k % 2 ? `${info.endpoints.admin}/world` : `${info.endpoints.admin}/requests`).then((x) => x.text())));
  const busyMb = treeRssMb(info.pid);
  spawnSync(tsRunner()[0], [...tsRunner().slice(1), cli, "stop", "--dir", dir], { encoding: "utf8" });
  await rm(dir, { recursive: true, force: true });
  results.push({ startMs, idleMb, busyMb });
  process.stdout.write(`run ${i + 1}: start ${(startMs / 1000).toFixed(2)} s (CLI process to ready), memory ${idleMb.toFixed(0)} MB idle, ${busyMb.toFixed(0)} MB after a burst\n`);
}
if (results.length) {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  process.stdout.write(`median: start ${(med(results.map((r) => r.startMs)) / 1000).toFixed(2)} s, ` +
    `memory ${med(results.map((r) => r.idleMb)).toFixed(0)} MB idle / ${Math.max(...results.map((r) => r.busyMb)).toFixed(0)} MB peak (sandbox + Azurite processes)\n`);
}
