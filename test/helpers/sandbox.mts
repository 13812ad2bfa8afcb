// Starts a sandbox inside the test process. The process must trust the sandbox's CA from its
// start (NODE_EXTRA_CA_CERTS / DENO_CERT are read once), so a test file started without it
// re-runs itself with a fresh CA in the environment: every test file stays runnable alone.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTlsMaterial, createTlsMaterial, writeTlsMaterial, type TlsMaterial } from "../../sandbox/core/ca.mts";
import { tsRunner } from "../../sandbox/core/runtime.mts";
import { DEFAULT_OPTIONS, mergeOptions, type SandboxOptions, type WorldSeed } from "../../sandbox/core/state.mts";
import { loadWorldSeed, startSandbox, type SandboxHandle } from "../../sandbox/main.mts";

const TLS_DIR_ENV = "METERING_TEST_TLS_DIR";

/** TLS material this process trusts; re-executes the process with a new CA when there is none. */
export async function trustedTls(): Promise<TlsMaterial> {
  const dir = process.env[TLS_DIR_ENV];
  if (dir && existsSync(join(dir, "ca.pem")) && process.env.NODE_EXTRA_CA_CERTS === join(dir, "ca.pem")) {
    return await readTlsMaterial(dir);
  }
  const fresh = await mkdtemp(join(tmpdir(), "metering-test-tls-"));
  const paths = await writeTlsMaterial(fresh, await createTlsMaterial());
  const [cmd, ...pre] = tsRunner();
  const child = spawn(cmd, [...pre, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, [TLS_DIR_ENV]: fresh, NODE_EXTRA_CA_CERTS: paths.caCertPath, DENO_CERT: paths.caCertPath },
  });
  const code: number = await new Promise((r) => child.once("exit", (c) => r(c ?? 1)));
  await rm(fresh, { recursive: true, force: true });
  process.exit(code);
}

export interface TestSandboxOptions {
  seed?: WorldSeed;
  options?: Partial<{ [K in keyof SandboxOptions]: Partial<SandboxOptions[K]> }>;
  azurite?: boolean;
}

/** A sandbox for one test file, in a temporary directory; `stop()` removes the directory. */
export async function startTestSandbox(o: TestSandboxOptions = {}): Promise<SandboxHandle> {
  const tls = await trustedTls();
  const dir = await mkdtemp(join(tmpdir(), "metering-sbx-"));
  const seed = structuredClone(o.seed ?? await loadWorldSeed());
  if (o.options) seed.options = mergeOptions(mergeOptions(DEFAULT_OPTIONS, seed.options ?? {}), o.options);
  const quiet = !process.env.SANDBOX_DEBUG;
  const sb = await startSandbox({ dir, tls, seed, azurite: o.azurite, log: quiet ? () => {} : undefined });
  // A file whose setup throws never reaches its after hook: its Azurite would outlive it.
  const azuritePid = sb.azuritePid;
  if (azuritePid) {
    process.on("exit", () => {
      try {
        process.kill(azuritePid, "SIGKILL");
      } catch {
        // already stopped
      }
    });
  }
  const stop = sb.stop;
  sb.stop = async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  };
  return sb;
}

/** JSON from the sandbox's admin API. */
export async function admin<T = unknown>(sb: SandboxHandle, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(sb.endpoints.admin + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin ${method} ${path}: HTTP ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}
