#!/usr/bin/env node
// The whole ISV workflow in the sandbox, through the real scripts: start a local Azure, set up
// the issuer, list and connect two customers, emit one usage event, then a usage file for both
// customers (twice: the second run sends nothing), check the trust chain with the doctor, show
// what the metering API recorded and the last audit line, stop the sandbox.
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

const runner = tsRunner();
const title = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  process.stdout.write(`$ ${file.replace(ROOT + "/", "")} ${args.join(" ")}\n`);
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
    title("0. ISV setup: storage + Key Vault + signing key, publish the issuer documents, prove them");
    await step("scripts/0-isv-setup.mts", [], env);
    title("1. The managed apps the publisher can see");
    await step("scripts/1-list-customers.mts", [], env);
    title(`1. Connect customer '${customer.name}': UAMI + federated credential in its managed resource group`);
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
    title(`2. A usage file for both customers (${rows.length - 1} rows): one token per customer, batches of up to 25`);
    process.stdout.write(await readFile(usageFile, "utf8"));
    await step("scripts/2-emit-meter.mts", ["--file", usageFile], env);
    title("2. The same file again: every event is already accepted per the audit log, nothing is sent");
    await step("scripts/2-emit-meter.mts", ["--file", usageFile], env);

    title(`Doctor: every link of the trust chain for '${customer.name}'`);
    await step("scripts/doctor.mts", [customer.subscriptionId, customer.managedResourceGroup], env);

    title("What the metering API recorded (sandbox admin API: GET /metering/events)");
    const events = await (await fetch(`${info.endpoints.admin}/metering/events`)).json();
    process.stdout.write(JSON.stringify(events, null, 2) + "\n");
    title(`The audit line (${join(String(env.METERING_DATA_DIR), "audit.jsonl")}, last line)`);
    const audit = (await readFile(join(String(env.METERING_DATA_DIR), "audit.jsonl"), "utf8")).trim().split("\n");
    process.stdout.write(JSON.stringify(JSON.parse(audit[audit.length - 1]), null, 2) + "\n");
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    if (!values.keep) {
      title("Stop the sandbox");
      await run(cli, ["stop", "--dir", SANDBOX_DIR], process.env);
    }
  }
}
