#!/usr/bin/env node
// Runs every uvu test file as its own process and prints one closing line: `N passed, N failed`.
//
// A line a test prints that starts with `skip: ` (a real client missing, a piece not built yet) is
// always shown under its file's line.
//
// Usage: npm test [-- [--runtime node|node24|deno] [--only unit|sandbox|e2e|realclients] [--jobs N] [FILTER...]]
//   --runtime  which runtime runs the test files (default: the one running this script)
//   --only     one folder of test/ (realclients: Microsoft's own clients against a sandbox)
//   --jobs     files run at once (default 2)
//   FILTER     substrings of test file paths: a file runs when its path contains any of them
// Exit codes: 0 all passed, 1 something failed, 2 usage error.
import { spawn } from "node:child_process";
import { readdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createTlsMaterial, writeTlsMaterial } from "../sandbox/core/ca.mts";
import { DENO_PATH, NODE24_PATH, systemNode, tsRunner } from "../sandbox/core/runtime.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const RUNTIMES: Record<string, () => string[]> = {
  node: () => [process.execPath, ...(process.features as { typescript?: unknown }).typescript ? [] : ["--import", "tsx"]],
  node20: () => [systemNode(), "--import", "tsx"],
  node24: () => [join(ROOT, NODE24_PATH)],
  deno: () => [join(ROOT, DENO_PATH), "run", "-A"],
};

let opts;
try {
  opts = parseArgs({
    options: { runtime: { type: "string" }, only: { type: "string" }, jobs: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
const { values, positionals } = opts;
if (values.help) {
  process.stdout.write("Usage: npm test [-- [--runtime node|node20|node24|deno] [--only unit|sandbox|e2e|realclients] [--jobs N] [FILTER...]]\n");
  process.exit(0);
}
const runner = values.runtime ? RUNTIMES[values.runtime]?.() : tsRunner();
if (!runner) {
  process.stderr.write(`unknown --runtime '${values.runtime}' (node, node20, node24, deno)\n`);
  process.exit(2);
}
const jobs = Number(values.jobs ?? 2);
if (!Number.isInteger(jobs) || jobs < 1) {
  process.stderr.write("--jobs must be a positive integer\n");
  process.exit(2);
}

async function findTests(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== "helpers" && e.name !== "fixtures") out.push(...await findTests(p));
    else if (e.isFile() && e.name.endsWith(".test.mts")) out.push(p);
  }
  return out.sort();
}

const files = (await findTests(join(ROOT, "test", values.only ?? "")))
  .filter((f) => positionals.length === 0 || positionals.some((p) => relative(ROOT, f).includes(p)));
if (files.length === 0) {
  process.stderr.write("no test files matched\n");
  process.exit(2);
}

// One CA for the whole run, trusted by every test process from its start.
const tlsDir = await mkdtemp(join(tmpdir(), "metering-test-tls-"));
const tlsPaths = await writeTlsMaterial(tlsDir, await createTlsMaterial());
// Every test talks to 127.0.0.1 only: a proxy of this machine would stand between the tests,
// the sandbox (whose SDK clients honour it) and its services.
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|all)_proxy$/i.test(k))),
  METERING_TEST_TLS_DIR: tlsDir,
  NODE_EXTRA_CA_CERTS: tlsPaths.caCertPath,
  DENO_CERT: tlsPaths.caCertPath,
  NO_COLOR: "1",
  FORCE_COLOR: "0",
};

interface Result { file: string; passed: number; failed: number; skipped: number; ms: number; output: string; code: number | null }

function runFile(file: string): Promise<Result> {
  const t0 = Date.now();
  return new Promise((res) => {
    const child = spawn(runner![0], [...runner!.slice(1), file], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 15 * 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      // uvu's summary: "Total: N", "Passed: N", "Skipped: N" (summed when a file runs several suites).
      // deno-lint-ignore no-control-regex -- strips the colour codes a test runner prints
      const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
      const sum = (label: string) => [...plain.matchAll(new RegExp(`${label}:\\s+(\\d+)`, "g"))].reduce((a, m) => a + Number(m[1]), 0);
      const total = sum("Total"), passed = sum("Passed"), skipped = sum("Skipped");
      // uvu counts skipped tests outside Total.
      let failed = total - passed;
      if (code !== 0 && failed === 0) failed = 1; // crashed, or failed outside a test
      if (total === 0 && skipped === 0 && code === 0) failed = 1; // a test file that ran (or skipped) no test is a defect
      res({ file: relative(ROOT, file), passed, failed, skipped, ms: Date.now() - t0, output, code });
    });
  });
}

const results: Result[] = [];
const queue = [...files];
await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, async () => {
  for (let f = queue.shift(); f; f = queue.shift()) {
    const r = await runFile(f);
    results.push(r);
    const mark = r.failed ? "FAIL" : "ok  ";
    process.stdout.write(`${mark} ${r.file}  (${r.passed} passed, ${r.failed} failed, ${(r.ms / 1000).toFixed(1)} s)\n`);
    // A test whose client this machine lacks says so on a `skip:` line: shown even when the file passed.
    for (const line of r.output.split("\n")) if (line.startsWith("skip: ")) process.stdout.write(`     ${line}\n`);
    if (r.failed) process.stdout.write(r.output.split("\n").map((l) => `    ${l}`).join("\n") + "\n");
  }
}));
await rm(tlsDir, { recursive: true, force: true });

const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
const skipped = results.reduce((a, r) => a + r.skipped, 0);
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exitCode = failed ? 1 : 0;
