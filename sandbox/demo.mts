#!/usr/bin/env node
// The whole ISV workflow in the sandbox, through the real scripts: start a local Azure, set up
// the issuer, list and connect two customers, emit one usage event, then a usage file for both
// customers (twice: the second run sends nothing), check the trust chain with the doctor, show
// what the metering API recorded and the last audit record, stop the sandbox, and end with the
// commands to try the same by hand. Colour only on a terminal, and never with NO_COLOR set.
//
// Usage: npm run demo [-- --keep] [-- --dir DIR]
//   --keep   leave the sandbox running afterwards (stop: npm run sandbox -- stop --dir DIR)
//   --dir    the sandbox's directory (default .sandbox-demo; emptied first)
// Environment: METERING_DATA_DIR  where config.json and audit.jsonl go (default .sandbox-demo/metering-data)
// Exit codes: 0 ok, 1 a step failed, 2 usage error.
import { spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { tsRunner } from "./core/runtime.mts";
import { displayWidth, renderTable, widthOf } from "../lib/cli/output.mts";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const USAGE = "Usage: npm run demo [-- --keep] [-- --dir DIR]\n";

let values;
try {
  ({ values } = parseArgs({ options: { keep: { type: "boolean" }, dir: { type: "string" }, help: { type: "boolean", short: "h" } }, strict: true }));
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (values.dir !== undefined && values.dir.trim() === "") {
  process.stderr.write(`demo: --dir needs a directory\n${USAGE}`);
  process.exit(2);
}
const SANDBOX_DIR = resolve(values.dir ?? join(ROOT, ".sandbox-demo"));
const KEEP = values.keep === true;

const runner = tsRunner();
// https://no-color.org: NO_COLOR set and not empty turns colour off; a pipe or file never gets any.
const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;
const bold = (s: string) => (colour ? `\x1b[1m${s}\x1b[0m` : s);
const title = (s: string) => process.stdout.write(`\n${bold(`== ${s}`)}\n`);
const say = (s = "") => process.stdout.write(`${s}\n`);
/** A path relative to the working directory when it is inside it. */
const here = (p: string) => (p.startsWith(`${process.cwd()}/`) ? p.slice(process.cwd().length + 1) : p);

/** `$ command args`, continued over lines with ` \\` where it is wider than the terminal (copyable as it is). */
function commandLines(words: string[], width: number): string[] {
  const lines = [`$ ${words[0]}`];
  for (const word of words.slice(1)) {
    if (displayWidth(`${lines[lines.length - 1]} ${word} \\`) > width) {
      lines[lines.length - 1] += " \\";
      lines.push(`    ${word}`);
    } else lines[lines.length - 1] += ` ${word}`;
  }
  return lines;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  for (const line of commandLines([file.replace(ROOT + "/", ""), ...args], widthOf(process.stdout))) say(line);
  return new Promise((res) => {
    const child = spawn(runner[0], [...runner.slice(1), file, ...args], { cwd: ROOT, env, stdio: "inherit" });
    child.on("exit", (code) => res(code ?? 1));
  });
}

async function step(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const code = await run(join(ROOT, file), args, env);
  if (code !== 0) throw new Error(`${file} exited with ${code}`);
}

const cli = join(ROOT, "sandbox", "cli.mts");
let finished = false;
title("Start the sandbox (a local Azure)");
await rm(SANDBOX_DIR, { recursive: true, force: true });
if (await run(cli, ["start", "--dir", SANDBOX_DIR], process.env) !== 0) {
  process.exitCode = 1;
} else {
  try {
    const info = JSON.parse(await readFile(join(SANDBOX_DIR, "sandbox.json"), "utf8"));
    const envText = await readFile(join(SANDBOX_DIR, "env"), "utf8");
    const env: NodeJS.ProcessEnv = { ...process.env, AZURE_HTTP_USER_AGENT: "" };
    for (const m of envText.matchAll(/^export (\w+)='((?:[^']|'\\'')*)'$/gm)) env[m[1]] = m[2].replace(/'\\''/g, "'");
    env.PATH = `${join(SANDBOX_DIR, "bin")}:${process.env.PATH}`;
    env.METERING_DATA_DIR = process.env.METERING_DATA_DIR ?? join(SANDBOX_DIR, "metering-data");
    process.stdout.write(`state directory: ${env.METERING_DATA_DIR}\n`);
    const [customer, second] = info.world.customers;

    title("0. Publisher defaults from `az account show`");
    await step("scripts/0-add-defaults.mts", [], env);
    title("0. ISV setup: storage, Key Vault, key; publish and prove the issuer documents");
    await step("scripts/0-isv-setup.mts", [], env);
    title("1. The managed apps the publisher can see");
    await step("scripts/1-list-customers.mts", [], env);
    title(`1. Connect customer '${customer.name}': UAMI + federated credential in its MRG`);
    await step("scripts/1-connect-customer.mts", [customer.subscriptionId, customer.managedResourceGroup], env);
    title(`1. Connect customer '${second.name}'`);
    await step("scripts/1-connect-customer.mts", [second.subscriptionId, second.managedResourceGroup], env);
    title("2. Emit one usage event for the previous hour");
    // The file below names absolute hours, as an hourly job should: the same hours whenever it runs.
    const thisHour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const hourBack = (h: number) => new Date(thisHour - h * 3_600_000).toISOString().replace(".000Z", "Z");
    await step("scripts/2-emit-meter.mts", [customer.subscriptionId, customer.managedResourceGroup, "1", customer.dimensions[0], "5"], env);

    // The first row is the event just sent: the audit log says it was accepted, so it is skipped.
    const usageFile = join(String(env.METERING_DATA_DIR), "usage-demo.csv");
    const rows = [["subscription", "managed-resource-group", "dimension", "quantity", "effective-start-time"]];
    rows.push([customer.subscriptionId, customer.managedResourceGroup, customer.dimensions[0], "5", hourBack(1)]);
    for (const c of [customer, second]) {
      for (const h of [2, 3]) rows.push([c.subscriptionId, c.managedResourceGroup, c.dimensions[0], h === 2 ? "12.5" : "7", hourBack(h)]);
    }
    await writeFile(usageFile, rows.map((r) => r.join(",")).join("\n") + "\n");
    title(`2. A usage file for both customers (${rows.length - 1} rows): one token per customer`);
    // The file as a table: its rows are wider than a terminal (two GUID-long ids and a time).
    const [header, ...csvRows] = (await readFile(usageFile, "utf8")).trim().split("\n").map((l) => l.split(","));
    say(here(usageFile));
    say(`  ${header.join(",")}`);
    for (const line of renderTable(csvRows, {
      columns: [
        { header: "SUBSCRIPTION", fit: "middle", minWidth: 13 },
        { header: "MRG", fit: "middle", minWidth: 16, shrinkOrder: 1 },
        "DIMENSION", { header: "QUANTITY", align: "right" }, "EFFECTIVE START",
      ],
      width: widthOf(process.stdout) - 2,
    })) say(`  ${line}`);
    await step("scripts/2-emit-meter.mts", ["--file", usageFile], env);
    title("2. The same file again: all accepted per the audit log, nothing is sent");
    await step("scripts/2-emit-meter.mts", ["--file", usageFile], env);

    title(`Doctor: every link of the trust chain for '${customer.name}'`);
    await step("scripts/doctor.mts", [customer.subscriptionId, customer.managedResourceGroup], env);

    title("What the metering API recorded (sandbox admin API: GET /metering/events)");
    const events: Array<{ resourceId: string; dimension: string; quantity: number; effectiveStartTime: string }> =
      await (await fetch(`${info.endpoints.admin}/metering/events`)).json();
    const customerOf = (resourceId: string) =>
      (info.world.customers as Array<{ name: string; resourceUsageId: string }>).find((c) => c.resourceUsageId === resourceId)?.name ?? resourceId;
    const rowsOut = events
      .map((e) => [customerOf(e.resourceId), e.dimension, e.effectiveStartTime.replace(/:00(\.0+)?Z$/, "Z"), String(e.quantity)])
      .sort((a, b) => a[0].localeCompare(b[0]) || a[2].localeCompare(b[2]));
    const width = widthOf(process.stdout);
    for (const line of renderTable(rowsOut, {
      columns: ["CUSTOMER", { header: "DIMENSION", fit: "middle" }, "HOUR (UTC)", { header: "QUANTITY", align: "right" }],
      width,
      empty: "(no events: nothing was accepted)",
    })) say(line);
    const auditPath = join(String(env.METERING_DATA_DIR), "audit.jsonl");
    const audit = (await readFile(auditPath, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const last = audit[audit.length - 1];
    const lastEvents = Array.isArray(last.events) ? last.events as Array<{ state?: string }> : [];
    title(`The audit log: ${audit.length} records, one JSON object per line`);
    say(auditPath);
    say(`last: ${last.operation} at ${last.time}${lastEvents.length ? `, ${lastEvents.length} event(s): ${[...new Set(lastEvents.map((e) => e.state))].join(", ")}` : ""}`);
    say("(the whole record: tail -n 1 <file> | jq)");
    finished = true;
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    if (!values.keep) {
      title("Stop the sandbox");
      await run(cli, ["stop", "--dir", SANDBOX_DIR], process.env);
    }
  }
  if (finished) tryNext();
}

/** The commands of the README's walkthrough by hand, against this sandbox or a new one. */
function tryNext() {
  const scripts = here(join(ROOT, "scripts"));
  title("Try it by hand (README: \"By hand, against the sandbox\")");
  if (KEEP) {
    say(`The sandbox is still running. In a shell:`);
    say(`  source ${here(join(SANDBOX_DIR, "env"))}`);
    say(`  export METERING_DATA_DIR=${here(String(process.env.METERING_DATA_DIR ?? join(SANDBOX_DIR, "metering-data")))}`);
  } else {
    say("Start a sandbox of your own, then point the scripts at it:");
    say("  npm run sandbox -- start");
    say("  source .sandbox/env");
    say("  export METERING_DATA_DIR=.sandbox/metering-data");
  }
  // As this runtime starts a script: Deno and a Node with type stripping run the .mts file
  // itself; an older Node goes through scripts/run.mjs (tsx), which says what to install if not.
  const native = "Deno" in globalThis || (process as { features?: { typescript?: unknown } }).features?.typescript;
  const run = (name: string) => "Deno" in globalThis ? `deno run -A ${scripts}/${name}.mts` : native ? `node ${scripts}/${name}.mts` : `node ${scripts}/run.mjs ${name}`;
  if (!native) say(`(this Node ${process.versions.node.split(".")[0]} needs scripts/run.mjs; on Node 22.18+: node scripts/X.mts)`);
  for (const line of [
    `${run("0-add-defaults")} && ${run("0-isv-setup")}`,
    `${run("1-list-customers")}            # --wide: full ids`,
    `${run("1-connect-customer")} <sub> <mrg>`,
    `${run("2-emit-meter")} <sub> <mrg> 1 <dimension> 5`,
    run("doctor"),
  ]) say(`  ${line}`);
  say(KEEP ? `Stop it: npm run sandbox -- stop --dir ${here(SANDBOX_DIR)}` : "Stop it: npm run sandbox -- stop");
}
