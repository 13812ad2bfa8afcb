#!/usr/bin/env node
// Starts one of the scripts beside this file on whatever Node is installed, or says in one
// line what to install. Plain JavaScript, so that every Node can read it: `node x.mts` on a
// Node without type stripping (Node 20, Node 22 before 22.18) fails inside Node's loader with
// a stack trace before any line of the script runs, and nothing in the script can prevent it.
//
// Usage: node scripts/run.mjs <script> [args…]     e.g. node scripts/run.mjs 1-list-customers --json
//   Node 22.18 or later (or 23.6+): runs the script in this process, as `node scripts/<script>.mts`
//   Node 22.6 to 22.17:             runs it with --experimental-strip-types
//   Node 20 with tsx installed:     runs it through tsx (the fallback; `npm install` brings tsx)
//   anything else:                  one line that says what to do, exit 2
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const EXIT_USAGE = 2;

/**
 * How this Node can run a .mts file: "native" (type stripping on), "flag"
 * (--experimental-strip-types exists), "tsx" (Node 20 or later with tsx), or "none". Pure.
 *
 * @param {{ version: string; typescript?: unknown; hasTsx: boolean }} node
 * @returns {"native" | "flag" | "tsx" | "none"}
 */
export function planFor(node) {
  const [major, minor] = node.version.replace(/^v/, "").split(".").map(Number);
  if (node.typescript) return "native";
  if ((major === 22 && minor >= 6) || (major === 23 && minor < 6)) return "flag";
  if (major >= 20 && node.hasTsx) return "tsx";
  return "none";
}

/** The one line for a Node that cannot run the scripts. */
export function cannotRunMessage(script, version) {
  return `Cannot run ${script} on Node ${version.replace(/^v/, "")}: install Node 22.18 or later (Cloud Shell has it), or run npm install (it brings tsx) to use Node 20`;
}

/** The scripts beside this file, without their extension. */
function scriptNames() {
  return readdirSync(HERE).filter((f) => f.endsWith(".mts")).map((f) => f.slice(0, -4)).sort();
}

async function tsxApi() {
  try {
    return await import("tsx/esm/api");
  } catch {
    return undefined;
  }
}

async function main(argv) {
  const [name, ...args] = argv;
  if (!name || name === "--help" || name === "-h") {
    process.stdout.write(`Usage: node scripts/run.mjs <script> [args…]\nScripts: ${scriptNames().join(", ")}\n`);
    return name ? 0 : EXIT_USAGE;
  }
  const base = name.replace(/^scripts\//, "").replace(/\.mts$/, "");
  const file = join(HERE, `${base}.mts`);
  if (base.includes("/") || !existsSync(file)) {
    process.stderr.write(`Cannot find script ${JSON.stringify(name)}: expected one of ${scriptNames().join(", ")}\n`);
    return EXIT_USAGE;
  }
  const tsx = planFor({ version: process.version, typescript: process.features?.typescript, hasTsx: false }) === "none" ? await tsxApi() : undefined;
  const plan = planFor({ version: process.version, typescript: process.features?.typescript, hasTsx: tsx !== undefined });
  if (plan === "none") {
    process.stderr.write(`${cannotRunMessage(`scripts/${base}.mts`, process.version)}\n`);
    return EXIT_USAGE;
  }
  if (plan === "flag") {
    const child = spawn(process.execPath, ["--experimental-strip-types", "--disable-warning=ExperimentalWarning", file, ...args], { stdio: "inherit" });
    // Ctrl-C reaches the child from the terminal; this process only waits for it.
    for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
    return await new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? 128 + (constants.signals[signal] ?? 0))));
  }
  if (plan === "tsx") tsx.register();
  // Node 22.18+/24: the script and everything it imports load from the compile cache (Node
  // 20 has none). After the plan, so that a Node that cannot read .mts never loads the module.
  else await (await import("../lib/core/compile-cache.mts")).enableCompileCache();
  // The script reads process.argv.slice(2) and sets process.exitCode, as when started by itself.
  process.argv = [process.argv[0], file, ...args];
  await import(pathToFileURL(file).href);
  return undefined;
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const code = await main(process.argv.slice(2));
  if (code !== undefined) process.exitCode = code;
}
