#!/usr/bin/env node
// How much a big usage file costs before anything is sent: `2-emit-meter.mts --file … --dry-run`
// over a synthetic file of `--rows` rows (default 1,000,000) for `--customers` connected
// customers, read from a file and from stdin, per runtime. The dry run reads, checks and plans
// every row and signs nothing, so no sandbox is needed: a config.json with the customers and an
// empty data directory are enough. Prints the wall time and the child's peak memory (VmHWM,
// sampled every 20 ms) against the goal of 300 MB.
// With --aggregate the rows are raw usage records (a random second of one of 20 hours each,
// decimal quantities) for `2-emit-meter --aggregate`, and it prints records per second against
// the goal of 200,000 per CPU second of the process, which load on the machine does not change
// (the default customers are then 50: many records per hour and dimension).
//
// Usage: npm run bench:input [-- --rows N --customers N --aggregate --runtime node20|node24|deno --keep]
// Exit codes: 0 done, 1 a dry run failed or said something unexpected, 2 usage error.
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { installedRuntimes } from "../sandbox/core/runtime.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const GOAL_MB = 300;
const DIMENSIONS = 25;
const USAGE = "Usage: npm run bench:input [-- --rows N --customers N --aggregate --runtime node20|node24|deno --keep]\n";
const GOAL_RECORDS_PER_S = 200_000;
const AGGREGATE_HOURS = 20;
const say = (text: string) => process.stderr.write(`${text}\n`);
const print = (text: string) => process.stdout.write(`${text}\n`);

let values;
try {
  ({ values } = parseArgs({
    options: {
      rows: { type: "string", default: "1000000" },
      customers: { type: "string" },
      aggregate: { type: "boolean" },
      runtime: { type: "string", multiple: true },
      keep: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  }));
} catch (err) {
  say(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const aggregate = values.aggregate === true;
const nRows = Number(values.rows), nCustomers = Number(values.customers ?? (aggregate ? "50" : "2000"));
// Each customer has DIMENSIONS dimensions and 24 hours: that many distinct rows at most (raw records: any number).
if (!Number.isInteger(nRows) || nRows < 1 || !Number.isInteger(nCustomers) || nCustomers < 1 || (!aggregate && nRows > nCustomers * DIMENSIONS * 24)) {
  say(`--rows and --customers: positive integers, at most ${DIMENSIONS * 24} rows per customer`);
  process.exit(2);
}
const allRuntimes = installedRuntimes(ROOT);
const chosen = values.runtime ?? Object.keys(allRuntimes);
for (const r of chosen) if (!allRuntimes[r]) {
  say(`unknown or missing runtime ${r} (have: ${Object.keys(allRuntimes).join(", ")})`);
  process.exit(2);
}

/** Runs a script, stdin from `input` when given; samples the child's peak RSS (VmHWM) until it exits. */
function measured(rt: string[], args: string[], env: Record<string, string>, input?: string): Promise<{ ms: number; cpuS: number; code: number | null; peakMb: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(rt[0], [...rt.slice(1), ...args], { cwd: ROOT, env, stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    if (input) createReadStream(input).pipe(child.stdin!);
    let peakKb = 0, cpuTicks = 0;
    const timer = setInterval(async () => {
      const [status, stat] = await Promise.all([readFile(`/proc/${child.pid}/status`, "utf8").catch(() => ""), readFile(`/proc/${child.pid}/stat`, "utf8").catch(() => "")]);
      const m = /VmHWM:\s+(\d+)/.exec(status);
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
      // utime and stime (fields 14 and 15, in clock ticks of 1/100 s), after the command name's ")".
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields.length > 13) cpuTicks = Math.max(cpuTicks, Number(fields[11]) + Number(fields[12]));
    }, 20);
    child.on("exit", (code) => {
      clearInterval(timer);
      res({ ms: performance.now() - t0, cpuS: cpuTicks / 100, code, peakMb: peakKb / 1024, stdout, stderr });
    });
  });
}

const uuid = (prefix: string, i: number) => `${prefix}${String(i).padStart(4, "0").slice(-4)}-1bf0-4dda-aec3-${String(i).padStart(12, "0")}`;

/** A config.json with the ISV set up (as 0-isv-setup leaves it) and `n` connected customers. */
function benchConfig(n: number) {
  const customers: Record<string, Record<string, unknown>> = {};
  for (let i = 0; i < n; i++) {
    const sub = uuid("0b1f", i);
    customers[sub] = {
      [`mrg-bench-${i}`]: {
        uamiClientId: uuid("3333", i), tenantId: uuid("4444", i), subject: "metering-submission-via-uami from 11111111-1111-4111-8111-111111111111",
        audience: "api://AzureADTokenExchange", uamiName: "metering-submission-uami", planName: "bench",
        billing: { resourceId: uuid("5555", i), resourceUri: `/subscriptions/${sub}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/app` },
        connectedAt: "2020-01-01T00:00:00.000Z",
      },
    };
  }
  const kid = "https://bench.vault.azure.net/keys/idpkey/0123456789abcdef0123456789abcdef";
  return {
    publisher: {
      aadTenantId: "11111111-1111-4111-8111-111111111111", subscriptionId: "22222222-2222-4222-8222-222222222222",
      resourceGroup: "marketplace-metering-idp-backend", location: "westeurope",
      idp: {
        issuer: "https://bench.blob.core.windows.net/public", keyUri: "https://bench.vault.azure.net/keys/idpkey", keyId: kid,
        keyJson: { kid, kty: "RSA", e: "AQAB", n: "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0" },
      },
    },
    customers,
  };
}

/** Events the raw records of --aggregate sum into: one per customer, dimension and hour that has a record. */
const aggregatedEvents = Math.min(nRows, nCustomers * DIMENSIONS * AGGREGATE_HOURS);

/**
 * Writes the usage file: row i is for customer i mod N, so every customer gets its share of
 * dimensions and hours. Raw records (--aggregate) take a second of their hour from i, so the
 * times are all different, and quantities with two decimals.
 */
async function writeUsageFile(path: string) {
  const out = createWriteStream(path);
  const write = (text: string) => out.write(text) ? Promise.resolve() : new Promise<void>((r) => out.once("drain", () => r()));
  await write(`subscription,managed-resource-group,dimension,quantity,${aggregate ? "effective-start-time" : "hours-ago"}\n`);
  const firstHour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - AGGREGATE_HOURS * 3_600_000;
  let lines: string[] = [];
  for (let i = 0; i < nRows; i++) {
    const c = i % nCustomers, slot = Math.floor(i / nCustomers);
    const d = slot % DIMENSIONS, h = Math.floor(slot / DIMENSIONS) % (aggregate ? AGGREGATE_HOURS : 24);
    if (aggregate) {
      const at = new Date(firstHour + h * 3_600_000 + ((i * 7919) % 3600) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
      lines.push(`${uuid("0b1f", c)},mrg-bench-${c},dim-${String(d + 1).padStart(2, "0")},${((i % 997) + 1) / 100},${at}`);
    } else lines.push(`${uuid("0b1f", c)},mrg-bench-${c},dim-${String(d + 1).padStart(2, "0")},${(c % 97) + d + h + 0.5},${h}`);
    if (lines.length === 10_000) {
      await write(`${lines.join("\n")}\n`);
      lines = [];
    }
  }
  if (lines.length > 0) await write(`${lines.join("\n")}\n`);
  await new Promise<void>((r) => out.end(() => r()));
}

const dir = await mkdtemp(join(tmpdir(), "metering-bench-input-"));
let failed = false;
try {
  const dataDir = join(dir, "data");
  await mkdir(dataDir);
  await writeFile(join(dataDir, "config.json"), JSON.stringify(benchConfig(nCustomers)));
  const file = join(dir, "usage.csv");
  say(`Writing ${nRows.toLocaleString("en")} rows for ${nCustomers} customers to ${file}`);
  await writeUsageFile(file);
  const sizeMb = (await stat(file)).size / 2 ** 20;
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: dir, METERING_DATA_DIR: dataDir, NO_COLOR: "1" };

  print(`# 2-emit-meter --dry-run${aggregate ? " --aggregate" : ""} of ${nRows.toLocaleString("en")} ${aggregate ? "raw records" : "rows"} (${sizeMb.toFixed(0)} MiB CSV, ${nCustomers} customers), ${new Date().toISOString()}`);
  print(`machine: ${(await readFile("/proc/cpuinfo", "utf8")).match(/^processor/gm)?.length ?? "?"} cores; load average ${(await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ")}`);
  print(`${"runtime".padEnd(8)} ${"input".padEnd(6)} ${"wall time".padStart(10)} ${"peak memory".padStart(12)}${aggregate ? ` ${"CPU s".padStart(7)} ${"records/CPU s".padStart(13)}` : ""}  goal`);
  for (const name of chosen) {
    for (const input of ["file", "stdin"] as const) {
      const args = [join(ROOT, "scripts", "2-emit-meter.mts"), "--file", input === "file" ? file : "-", "--dry-run", ...(aggregate ? ["--aggregate"] : [])];
      const r = await measured(allRuntimes[name], args, env, input === "stdin" ? file : undefined);
      const expected = new RegExp(`^Would send ${aggregate ? aggregatedEvents : nRows} event\\(s\\) \\(0 resent\\) for ${Math.min(nCustomers, nRows)} customer\\(s\\)`);
      if (r.code !== 0 || !expected.test(r.stdout)) {
        failed = true;
        say(`${name} ${input}: exit ${r.code}\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-2000)}`);
        continue;
      }
      const verdict = r.peakMb < GOAL_MB ? "ok" : "OVER";
      // Per CPU second of the process (start-up included; sampled every 20 ms): what a loaded machine does not change.
      const perS = nRows / Math.max(r.cpuS, 0.01);
      const rate = aggregate ? ` ${r.cpuS.toFixed(2).padStart(7)} ${perS.toFixed(0).padStart(13)}` : "";
      const rateGoal = aggregate ? `, > ${GOAL_RECORDS_PER_S} records/CPU s ${perS > GOAL_RECORDS_PER_S ? "ok" : "UNDER"}` : "";
      print(`${name.padEnd(8)} ${input.padEnd(6)} ${`${(r.ms / 1000).toFixed(2)} s`.padStart(10)} ${`${r.peakMb.toFixed(0)} MB`.padStart(12)}${rate}  < ${GOAL_MB} MB ${verdict}${rateGoal}`);
    }
  }
} finally {
  if (values.keep) say(`Kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
