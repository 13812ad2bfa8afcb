// Runs the product's scripts as child processes, under the runtime running the tests, with the
// sandbox's environment (as a user who sourced DIR/env would).
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
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
  /** SIGKILL after this long (default 120 s): a backstop for a script that hangs. */
  timeoutMs?: number;
  /** SIGKILL as soon as this returns true; asked every 10 ms while the script runs. */
  killWhen?: () => boolean | Promise<boolean>;
  /** Test-only modules (repository paths) loaded before the script, e.g. CLOCK_PRELOAD. */
  preload?: string[];
}

let slowestMs = 0;

/** How long the slowest script run of this process took, in ms (0 before the first). */
export function slowestRunMs(): number {
  return slowestMs;
}

/** Moves the script's wall clock by METERING_TEST_CLOCK_OFFSET_MS (see test/helpers/clock-offset.mts). */
export const CLOCK_PRELOAD = "test/helpers/clock-offset.mts";

/** Runs `scripts/<name>` with args; resolves when it exits (never rejects on a non-zero exit). */
export function runScript(name: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return runFile(join("scripts", name), args, o);
}

/**
 * Variables of this machine a script must not inherit: what points the product or the Azure SDK
 * at another Azure or identity (a CI runner's AZURE_CLIENT_ID, Cloud Shell's MSI_ENDPOINT, a
 * developer's METERING_*). A test sets what it needs.
 */
const FOREIGN_ENV = /^(AZURE_|ARM_|MSI_|IDENTITY_|IMDS_ENDPOINT$|METERING_(?!TEST_))/;

/** This process's environment without the variables of FOREIGN_ENV. */
export function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !FOREIGN_ENV.test(k)) env[k] = v;
  return env;
}

/** Runs any TypeScript file of the repository (path relative to its root) like `runScript`. */
export function runFile(path: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...pre] = tsRunner();
  // Deno takes `--preload` after `run`; Node takes `--import` (after tsx's, which strips the types).
  for (const p of o.preload ?? []) pre.push(...(pre[0] === "run" ? ["--preload", join(ROOT, p)] : ["--import", pathToFileURL(join(ROOT, p)).href]));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...inheritedEnv(), ...o.env })) if (v !== undefined) env[k] = v;
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const child = spawn(cmd, [...pre, join(ROOT, path), ...args], { cwd: o.cwd ?? ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", rej);
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 120_000);
    let exited = false;
    child.on("exit", (code) => {
      exited = true;
      clearTimeout(timer);
      const ms = Date.now() - t0;
      slowestMs = Math.max(slowestMs, ms);
      res({ code, stdout, stderr, ms });
    });
    if (o.killWhen) {
      const killWhen = o.killWhen;
      void (async () => {
        while (!exited) {
          if (await killWhen()) {
            child.kill("SIGKILL");
            return;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
    }
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
