// scripts/run.mjs, the launcher for any Node: which way it runs a script, the one line it
// prints where no way works, and that a script started from another directory finds its files.
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { systemNode, tsRunner } from "../../sandbox/core/runtime.mts";
// @ts-types="./launcher.d.mts"
import { cannotRunMessage, planFor } from "../../scripts/run.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const LAUNCHER = join(ROOT, "scripts", "run.mjs");

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd, env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent" } });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", rej);
    child.on("close", (code) => res({ code, stdout, stderr }));
  });
}

const plan = suite("planFor()");
plan("native type stripping, the flag on Node 22.6 to 22.17, tsx on Node 20, else none", () => {
  assert.is(planFor({ version: "v24.3.0", typescript: "strip", hasTsx: false }), "native");
  assert.is(planFor({ version: "v22.18.0", typescript: "strip", hasTsx: false }), "native");
  assert.is(planFor({ version: "v22.17.0", typescript: false, hasTsx: false }), "flag");
  assert.is(planFor({ version: "v22.6.0", typescript: undefined, hasTsx: true }), "flag");
  assert.is(planFor({ version: "v23.5.0", typescript: false, hasTsx: false }), "flag");
  assert.is(planFor({ version: "v22.5.1", typescript: undefined, hasTsx: true }), "tsx");
  assert.is(planFor({ version: "v20.20.2", typescript: undefined, hasTsx: true }), "tsx");
  assert.is(planFor({ version: "v20.20.2", typescript: undefined, hasTsx: false }), "none");
  assert.is(planFor({ version: "v18.20.0", typescript: undefined, hasTsx: true }), "none");
});
plan("the message is one line that names the script, the Node and what to do", () => {
  const line = cannotRunMessage("scripts/doctor.mts", "v20.20.2");
  assert.not.match(line, /\n/);
  assert.match(line, /^Cannot run scripts\/doctor\.mts on Node 20\.20\.2: install Node 22\.18 or later/);
  assert.match(line, /npm install/);
});
plan.run();

const launch = suite("scripts/run.mjs as a process, from another directory");
const elsewhere = await mkdtemp(join(tmpdir(), "metering-cwd-"));
launch.after(() => rm(elsewhere, { recursive: true, force: true }));
launch("runs a script under this machine's Node (with tsx where it has no type stripping): --help, and a JSON refusal", async () => {
  const node = systemNode();
  const help = await run(node, [LAUNCHER, "1-list-customers", "--help"], elsewhere);
  assert.is(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: 1-list-customers\.mts/);
  const bad = await run(node, [LAUNCHER, "scripts/0-isv-setup.mts", "--json", "--bogus"], elsewhere);
  assert.is(bad.code, 2, bad.stderr);
  assert.is(JSON.parse(bad.stdout).error.code, "ERR_USAGE");
});
launch("an unknown script: one line naming the scripts, exit 2", async () => {
  const r = await run(systemNode(), [LAUNCHER, "9-nope"], elsewhere);
  assert.is(r.code, 2);
  assert.match(r.stderr, /^Cannot find script "9-nope": expected one of 0-add-defaults, .*doctor\n$/);
});
launch("a Node without type stripping and without tsx gets one line, exit 2", async () => {
  const node = systemNode();
  const probe = await run(node, ["-p", "JSON.stringify([process.version, Boolean(process.features.typescript)])"], elsewhere);
  const [version, stripping] = JSON.parse(probe.stdout) as [string, boolean];
  const [major, minor] = version.slice(1).split(".").map(Number);
  if (stripping || major > 22 || (major === 22 && minor >= 6)) return; // this machine's Node needs no tsx
  // A copy of the launcher where no node_modules (no tsx) can be found, with a script beside it.
  const dir = await mkdtemp(join(tmpdir(), "metering-launcher-"));
  try {
    await copyFile(LAUNCHER, join(dir, "run.mjs"));
    await writeFile(join(dir, "hello.mts"), "const x: number = 1;\nconsole.log(x);\n");
    const r = await run(node, [join(dir, "run.mjs"), "hello"], elsewhere);
    assert.is(r.code, 2);
    assert.is(r.stdout, "");
    assert.is(r.stderr, `${cannotRunMessage("scripts/hello.mts", version)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
launch("a script started from another directory (plain, not through the launcher) finds its own files", async () => {
  // `--import tsx` is looked up from the working directory: elsewhere, Node 20 needs tsx's own path.
  const [cmd, ...pre] = tsRunner().map((a) => (a === "tsx" ? import.meta.resolve("tsx") : a));
  const r = await run(cmd, [...pre, join(ROOT, "scripts", "0-isv-setup.mts"), "--help"], elsewhere);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: 0-isv-setup\.mts/);
  // The template is found beside the script, not in the working directory.
  assert.match(r.stdout, /templates\/0-isv-setup\.bicep/);
});
launch.run();
