#!/usr/bin/env node
// The sandbox: a local Azure (Entra, ARM, Key Vault, Storage via Azurite, Marketplace metering)
// in which the whole ISV workflow runs. Start it, source DIR/env, run the scripts; source
// DIR/env-front too for tools with Azure's host names built in (the front, sandbox/core/front.mts).
//
// Usage: npm run sandbox -- start [--dir DIR] [--world FILE]   start in the background, return when ready
//        npm run sandbox -- stop [--dir DIR]                   stop it; nothing is left running
//        npm run sandbox -- status [--dir DIR]                 print DIR/sandbox.json, exit 1 if not running
//        npm run sandbox [-- --dir DIR]                        run in the foreground until Ctrl-C
// DIR defaults to .sandbox. Exit codes: 0 ok, 1 failed, 2 usage error.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createTlsMaterial, writeTlsMaterial } from "./core/ca.mts";
import { tsRunner } from "./core/runtime.mts";

const USAGE = `Usage: sandbox [start|stop|status] [--dir DIR] [--world FILE]
  start    start in the background; returns when every service answers
  stop     stop a background sandbox
  status   show the running sandbox's endpoints (exit 1 if none)
  (none)   run in the foreground until Ctrl-C
Options:
  --dir DIR      state directory (default .sandbox); DIR/env is written for 'source', and
                 DIR/env-front (opt-in) sends Azure's public host names to the sandbox's front
  --world FILE   world seed (default sandbox/world.json)
  -h, --help     this help`;

const HERE = dirname(fileURLToPath(import.meta.url));
const MAIN = join(HERE, "main.mts");
const READY_TIMEOUT_MS = 30_000;

function fail(msg: string, code = 1): never {
  process.stderr.write(`sandbox: ${msg}\n`);
  process.exit(code);
}

let parsed;
try {
  parsed = parseArgs({
    options: { dir: { type: "string" }, world: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(USAGE + "\n");
} else {
  const command = positionals[0] ?? "foreground";
  if (positionals.length > 1 || !["start", "stop", "status", "foreground"].includes(command)) {
    fail(`unknown command '${positionals.join(" ")}'\n${USAGE}`, 2);
  }
  const dir = resolve(values.dir ?? ".sandbox");
  if (values.world) await stat(values.world).catch(() => fail(`world file '${values.world}' not found`, 2));
  if (command === "start") await start(dir, values.world, false);
  else if (command === "foreground") await start(dir, values.world, true);
  else if (command === "stop") await stop(dir);
  else await status(dir);
}

async function readRunning(dir: string): Promise<{ pid: number; azuritePid?: number } | undefined> {
  const info = await readFile(join(dir, "sandbox.json"), "utf8").then(JSON.parse).catch(() => undefined);
  if (!info?.pid) return undefined;
  try {
    process.kill(info.pid, 0);
    return info;
  } catch {
    return undefined;
  }
}

async function start(dir: string, world: string | undefined, foreground: boolean): Promise<void> {
  if (await readRunning(dir)) fail(`a sandbox is already running in ${dir} (stop it with: npm run sandbox -- stop --dir ${dir})`);
  await mkdir(dir, { recursive: true });
  await rm(join(dir, "sandbox.json"), { force: true });
  // Make the CA first so the sandbox process (and Azurite under it) trusts it from its start.
  const tls = await createTlsMaterial();
  const paths = await writeTlsMaterial(dir, tls);
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: paths.caCertPath, DENO_CERT: paths.caCertPath };
  const args = [...tsRunner(), MAIN, "--dir", dir, ...(world ? ["--world", resolve(world)] : [])];
  const t0 = Date.now();
  if (foreground) {
    const child = spawn(args[0], args.slice(1), { stdio: "inherit", env });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    void waitReady(dir, child.pid!, () => child.exitCode !== null).then(() => {
      process.stderr.write(`sandbox ready in ${Date.now() - t0} ms; environment: source ${join(dir, "env")}\nCtrl-C stops it.\n`);
    }).catch((err) => process.stderr.write(`sandbox: ${(err as Error).message}\n`));
    await new Promise<void>((r) => child.once("exit", (code) => { process.exitCode = code ?? 0; r(); }));
    return;
  }
  const logPath = join(dir, "sandbox.log");
  const out = openSync(logPath, "a");
  const child = spawn(args[0], args.slice(1), { stdio: ["ignore", out, out], env, detached: true });
  closeSync(out);
  let exited = false;
  child.once("exit", () => (exited = true));
  child.unref();
  try {
    await waitReady(dir, child.pid!, () => exited);
  } catch (err) {
    const tail = await readFile(logPath, "utf8").then((t) => t.split("\n").slice(-20).join("\n")).catch(() => "");
    try { process.kill(child.pid!, "SIGTERM"); } catch { /* already gone */ }
    fail(`${(err as Error).message}\n${tail}`);
  }
  await writeFile(join(dir, "pid"), `${child.pid}\n`);
  const info = JSON.parse(await readFile(join(dir, "sandbox.json"), "utf8"));
  process.stdout.write(`sandbox ready in ${Date.now() - t0} ms (pid ${child.pid})\n` +
    Object.entries(info.endpoints).map(([k, v]) => `  ${k.padEnd(9)} ${v}`).join("\n") +
    (info.front ? `\n  ${"front".padEnd(9)} ${info.front.proxy} (proxy for Azure's public host names)` : "") +
    `\nenvironment: source ${join(dir, "env")}` +
    (info.front ? `\n             source ${info.front.envFile}   (opt-in: curl, az, your own tools at Azure's own URLs)` : "") +
    `\nstop:        npm run sandbox -- stop${dir === resolve(".sandbox") ? "" : ` --dir ${dir}`}\n`);
}

async function waitReady(dir: string, pid: number, hasExited: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (hasExited()) throw new Error("the sandbox process exited during start");
    const info = await readFile(join(dir, "sandbox.json"), "utf8").then(JSON.parse).catch(() => undefined);
    if (info?.pid === pid) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the sandbox did not become ready within ${READY_TIMEOUT_MS / 1000} s`);
}

async function stop(dir: string): Promise<void> {
  const info = await readRunning(dir);
  if (!info) {
    process.stdout.write(`no sandbox running in ${dir}\n`);
    return;
  }
  process.kill(info.pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  while (Date.now() < deadline && alive(info.pid)) await new Promise((r) => setTimeout(r, 50));
  for (const pid of [info.pid, info.azuritePid]) if (pid && alive(pid)) process.kill(pid, "SIGKILL");
  await rm(join(dir, "sandbox.json"), { force: true });
  await rm(join(dir, "pid"), { force: true });
  process.stdout.write(`sandbox stopped (${dir})\n`);
}

async function status(dir: string): Promise<void> {
  if (!(await readRunning(dir))) fail(`no sandbox running in ${dir}`);
  process.stdout.write(await readFile(join(dir, "sandbox.json"), "utf8"));
}
