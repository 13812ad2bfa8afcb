// Runs the product's scripts as child processes, under the runtime running the tests, with the
// sandbox's environment (as a user who sourced DIR/env would).
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { tsRunner } from "../../sandbox/core/runtime.mts";
import type { SandboxHandle } from "../../sandbox/main.mts";

export const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "..");

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  stdin?: string | Uint8Array;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs `scripts/<name>` with args; resolves when it exits (never rejects on a non-zero exit). */
export function runScript(name: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return runFile(join("scripts", name), args, o);
}

/** Runs any TypeScript file of the repository (path relative to its root) like `runScript`. */
export function runFile(path: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...pre] = tsRunner();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...o.env })) if (v !== undefined) env[k] = v;
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const child = spawn(cmd, [...pre, join(ROOT, path), ...args], { cwd: o.cwd ?? ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", rej);
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 120_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr, ms: Date.now() - t0 });
    });
    child.stdin.end(o.stdin ?? "");
  });
}

/** The environment a user gets from `source DIR/env`, plus a fresh METERING_DATA_DIR. */
export async function sandboxEnv(sb: SandboxHandle, dataDir?: string): Promise<Record<string, string>> {
  return {
    ...sb.env,
    METERING_DATA_DIR: dataDir ?? await mkdtemp(join(tmpdir(), "metering-data-")),
    // A Cloud Shell marker would redirect the data dir; keep tests independent of the host.
    AZURE_HTTP_USER_AGENT: "",
  };
}

export function describe(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
