// Microsoft's real clients (the Debian azure-cli, python3-azure, curl) against a test sandbox,
// through its front where they hard-code Azure's host names. A client this machine lacks makes
// its tests skip with a `skip:` line that test/run.mts always shows: never silently.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { randomUUID } from "node:crypto";
import type { Test } from "uvu";
import type { TokenCredential } from "@azure/identity";
import { buildClientAssertion } from "../../lib/identity/assertion.mts";
import { createKeyVaultSigner } from "../../lib/identity/signer.mts";
import type { SandboxHandle } from "../../sandbox/main.mts";
import { isvUser, tokenFor } from "./arm.mts";
import { inheritedEnv } from "./scripts.mts";
import { findOnPath } from "./path.mts";

/** The Debian package's az, never the sandbox's stand-in (which a sourced DIR/env puts on PATH). */
export const REAL_AZ = "/usr/bin/az";
/** The system Python, where python3-azure installs (a pyenv python3 on PATH has no azure modules). */
export const SYSTEM_PYTHON = "/usr/bin/python3";
export const METERING_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";

/** Prints the line test/run.mts always shows, and returns the reason. */
export function printSkip(file: string, reason: string): string {
  // On a line of its own even in the middle of uvu's dots.
  process.stdout.write(`\nskip: ${basename(file)}: ${reason}\n`);
  return reason;
}

/** Why the real az cannot run here, or undefined when it can. */
export function azMissing(): string | undefined {
  return existsSync(REAL_AZ) ? undefined : `${REAL_AZ} not found (Debian package azure-cli; .ci/run installs it as root)`;
}

export function curlMissing(): string | undefined {
  return findOnPath("curl") ? undefined : "curl not found on PATH";
}

/** Why `modules` do not all import in the system Python, or undefined when they do. */
export async function pythonMissing(modules: string[]): Promise<string | undefined> {
  if (!existsSync(SYSTEM_PYTHON)) return `${SYSTEM_PYTHON} not found (Debian package python3-azure)`;
  const r = await run(SYSTEM_PYTHON, ["-c", modules.map((m) => `import ${m}`).join("; ")], inheritedEnv());
  return r.code === 0 ? undefined : `${SYSTEM_PYTHON} cannot import ${modules.join(", ")} (Debian package python3-azure): ${r.stderr.trim().split("\n").pop()}`;
}

/** Registers `name` on suite `s`: skipped with a printed reason when `missing` says so. */
export function testOrSkip(s: Test, file: string, missing: string | undefined, name: string, fn: () => Promise<void>) {
  if (missing) {
    printSkip(file, `${name}: ${missing}`);
    s.skip(name, fn);
  } else {
    s(name, fn);
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: Record<string, string | undefined>, o: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((res) => {
    execFile(cmd, args, { env: env as NodeJS.ProcessEnv, timeout: o.timeoutMs ?? 120_000, maxBuffer: 32 << 20, cwd: o.cwd }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export function show(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/**
 * The environment of a shell that sourced DIR/env-front only: Azure's host names go to the front,
 * the sandbox CA is the only one trusted, no variable of this machine's Azure leaks in, and az gets
 * a config directory of its own (no telemetry, no colour).
 */
export async function frontShellEnv(sb: SandboxHandle, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const base = inheritedEnv();
  for (const k of Object.keys(base)) if (/^(https?|all|no)_proxy$/i.test(k) || /^(REQUESTS_CA_BUNDLE|SSL_CERT_FILE|CURL_CA_BUNDLE|PYTHONPATH)$/.test(k)) delete base[k];
  return {
    ...base,
    ...sb.frontEnv!,
    NO_PROXY: "127.0.0.1,localhost,::1",
    no_proxy: "127.0.0.1,localhost,::1",
    AZURE_CONFIG_DIR: await mkdtemp(join(tmpdir(), "metering-azcfg-")),
    AZURE_CORE_COLLECT_TELEMETRY: "false",
    AZURE_CORE_NO_COLOR: "true",
    AZURE_CORE_SURVEY_MESSAGE: "false",
    ...extra,
  };
}

/** The real az with `env`; `--only-show-errors` keeps preview warnings out of stderr checks. */
export function az(env: Record<string, string>, ...args: string[]): Promise<RunResult> {
  return run(REAL_AZ, [...args, "--only-show-errors"], env);
}

/** An ISV user credential, in-process from the sandbox's Entra (what the ISV's own sign-in would give). */
export function isvCredential(sb: SandboxHandle): TokenCredential {
  return {
    async getToken(scopes) {
      const scope = Array.isArray(scopes) ? scopes[0] : scopes;
      const token = await tokenFor(sb, isvUser(sb), scope.replace(/\/\.default$/, ""));
      return { token, expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
}

export interface Publisher {
  issuer: string;
  keyId: string;
  kid: string;
}

/**
 * A federated token for a connected customer's UAMI, as the product makes it: the client assertion
 * signed by the ISV's key in the sandbox's Key Vault (the key never leaves the vault).
 */
export async function federatedToken(sb: SandboxHandle, pub: Publisher, subject: string): Promise<string> {
  const signer = await createKeyVaultSigner({
    keyId: pub.keyId, kid: pub.kid, credential: isvCredential(sb),
    settings: { httpTryTimeoutMs: 30_000, keyVaultDisableChallengeVerification: true },
  });
  return await buildClientAssertion({ issuer: pub.issuer, subject, signer, now: sb.state.now(), jti: randomUUID() });
}
