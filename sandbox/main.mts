// The sandbox process: a local Azure. Starts Azurite (Storage) as a child process and the
// emulated Entra, ARM, Key Vault and Marketplace metering services on HTTPS ports of 127.0.0.1,
// the plain-HTTP admin API, and the front (a proxy that plays Azure's public host names, core/front.mts);
// writes DIR/env, DIR/env-front and DIR/sandbox.json.
// Run through sandbox/cli.mts; tests call startSandbox() in-process.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTlsMaterial, tlsPaths, writeTlsMaterial, type TlsMaterial } from "./core/ca.mts";
import { ConnectionTable } from "./core/connections.mts";
import { startFront, type Front } from "./core/front.mts";
import type { Endpoints, KeyVaultHooks, ListeningServer, SandboxContext, ServiceBusHooks } from "./core/context.mts";
import { createServiceHandler, Observability, type ServiceDef } from "./core/http.mts";
import { SandboxState, type WorldSeed, type WorldSummary } from "./core/state.mts";
import { TokenService } from "./core/tokens.mts";
import { createAdminService } from "./services/admin.mts";
import { seedMrgResources } from "./services/arm/seed.mts";
import { createArmService } from "./services/arm/service.mts";
import { createEntraService } from "./services/entra/service.mts";
import { createGraphService } from "./services/graph/service.mts";
import { createStaticWebsiteService } from "./services/storage/static-website.mts";
import { createKeyVaultService } from "./services/keyvault/service.mts";
import { createManagedIdentityService } from "./services/entra/managed-identity.mts";
import { createMeteringService } from "./services/metering/service.mts";
import { createServiceBusService } from "./services/servicebus/service.mts";
import { jobRunner } from "./services/jobs/runner.mts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, "..");
export const DEFAULT_WORLD_FILE = join(HERE, "world.json");

/** Azurite's well-known development account (published by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = {
  name: "devstoreaccount1",
  key: "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
};

export interface SandboxHandle {
  dir: string;
  endpoints: Endpoints;
  caCertPath: string;
  world: WorldSummary;
  state: SandboxState;
  tokens: TokenService;
  obs: Observability;
  /** Environment for processes that should use the sandbox (same as DIR/env). */
  env: Record<string, string>;
  /** The front (undefined when started with front: false): its proxy URL and counters. */
  front: Front | undefined;
  /** What DIR/env-front adds to `env` to send Azure's public host names to the front. */
  frontEnv: Record<string, string> | undefined;
  azuritePid: number | undefined;
  stop(): Promise<void>;
}

export interface StartOptions {
  dir: string;
  /** World seed; default sandbox/world.json. */
  seed?: WorldSeed;
  /** Reuse TLS material the calling process already trusts (tests); default: make a new CA. */
  tls?: TlsMaterial;
  /** Start Azurite (default true). */
  azurite?: boolean;
  /** Start the front, the proxy for Azure's public host names (default true). */
  front?: boolean;
  log?: (msg: string) => void;
}

export async function loadWorldSeed(file = DEFAULT_WORLD_FILE): Promise<WorldSeed> {
  return JSON.parse(await readFile(file, "utf8")) as WorldSeed;
}

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(port, "127.0.0.1", () => res((server.address() as { port: number }).port));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((res) => {
    server.close(() => res());
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}

const AZURITE_START_TIMEOUT_MS = 120_000;

async function startAzurite(dir: string, certPath: string, keyPath: string, log: (m: string) => void): Promise<{ child: ChildProcess; endpoint: string }> {
  const location = join(dir, "azurite");
  await mkdir(location, { recursive: true });
  const main = join(REPO_ROOT, "node_modules", "azurite", "dist", "src", "blob", "main.js");
  // Azurite is plain JavaScript: run it with a Node binary even when the sandbox runs on Deno.
  const nodeBin = process.versions.deno ? "node" : process.execPath;
  const child = spawn(nodeBin, [
    main, "--location", location, "--blobHost", "127.0.0.1", "--blobPort", "0",
    "--cert", certPath, "--key", keyPath, "--oauth", "basic",
    "--disableTelemetry", "--skipApiVersionCheck", "--silent",
  ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, AZURITE_ACCOUNTS: "" } });
  return await new Promise((res, rej) => {
    let out = "";
    // Azurite's start-up is CPU-bound (it loads ~30 MB of JavaScript): on a loaded 2-core
    // machine it has taken over 20 s. It says when it listens, and an exit rejects at once, so
    // this timer only ends a start-up that hangs.
    const timer = setTimeout(() => {
      child.kill();
      rej(new Error(`Azurite did not start in ${AZURITE_START_TIMEOUT_MS / 1000} s:\n${out}`));
    }, AZURITE_START_TIMEOUT_MS);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listens on (https?:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ child, endpoint: `${m[1].replace(/\/$/, "")}/${AZURITE_ACCOUNT.name}` });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d: Buffer) => { out += d.toString(); log(`[azurite] ${d.toString().trim()}`); });
    child.once("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`Azurite exited with code ${code}:\n${out}`));
    });
  });
}

/** Loopback: never through a proxy (the sandbox's own ports are all on 127.0.0.1). */
export const LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1";
/** List variables whose value the env file puts in front of the user's own. */
const PREPENDED: Record<string, string> = { PATH: ":", NO_PROXY: ",", no_proxy: "," };

/** `value` in front of the list in the environment variable `name` (PATH, NO_PROXY). */
export function prependList(name: string, value: string, current = process.env[name]): string {
  return current ? `${value}${PREPENDED[name] ?? ","}${current}` : value;
}

const shellQuote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

function exportLines(env: Record<string, string>, lists: Record<string, string>): string[] {
  const lines = Object.entries(env).filter(([k]) => !(k in PREPENDED)).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
  for (const [k, v] of Object.entries(lists)) lines.push(`export ${k}=${shellQuote(v)}"\${${k}:+${PREPENDED[k]}\$${k}}"`);
  return lines;
}

export function envFileText(env: Record<string, string>, binDir: string): string {
  const lines = exportLines(env, { NO_PROXY: LOOPBACK_NO_PROXY, no_proxy: LOOPBACK_NO_PROXY, PATH: binDir });
  return `# Written by the metering sandbox: source it to point the scripts at the local Azure.\n${lines.join("\n")}\n`;
}

/** The environment that sends Azure's public host names to the front (DIR/env-front). */
export function frontEnvOf(frontUrl: string, caCertPath: string): Record<string, string> {
  return {
    HTTPS_PROXY: frontUrl, https_proxy: frontUrl,
    HTTP_PROXY: frontUrl, http_proxy: frontUrl,
    // Node's own http and fetch use the proxy variables only when asked to (Node >= 22.21 / 24.5).
    NODE_USE_ENV_PROXY: "1",
    CURL_CA_BUNDLE: caCertPath,
    REQUESTS_CA_BUNDLE: caCertPath,
    SSL_CERT_FILE: caCertPath,
    NODE_EXTRA_CA_CERTS: caCertPath,
    DENO_CERT: caCertPath,
  };
}

export function frontEnvFileText(frontEnv: Record<string, string>, envFile: string): string {
  return `# Written by the metering sandbox. Opt-in: after 'source ${envFile}', 'source' this file too to\n` +
    `# send Azure's public host names (login.microsoftonline.com, management.azure.com, *.vault.azure.net, ...)\n` +
    `# to the sandbox's front, a proxy on 127.0.0.1, and to trust the sandbox CA: curl, Python (the real az),\n` +
    `# Node and Deno then reach the sandbox at Azure's own URLs. Every other host is refused (403), and the\n` +
    `# CA bundle trusts the sandbox only: open a new shell for the internet.\n` +
    `${exportLines(frontEnv, { NO_PROXY: LOOPBACK_NO_PROXY, no_proxy: LOOPBACK_NO_PROXY }).join("\n")}\n`;
}

export async function startSandbox(opts: StartOptions): Promise<SandboxHandle> {
  const dir = resolve(opts.dir);
  const log = opts.log ?? ((m: string) => process.stderr.write(m + "\n"));
  await mkdir(dir, { recursive: true });
  const seed = opts.seed ?? await loadWorldSeed();
  const state = new SandboxState(seed);
  const tokens = await TokenService.create(state);
  const obs = new Observability();
  const tls = opts.tls ?? await createTlsMaterial();
  const paths = await writeTlsMaterial(dir, tls);

  const servers: Server[] = [];
  // Faults that cut a connection reset the TCP socket under it, which only the transport knows.
  const connections = new ConnectionTable();
  const listenHttps = async (def: ServiceDef): Promise<ListeningServer> => {
    const handler = createServiceHandler(def, obs, log, connections.cut);
    const server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, (req: IncomingMessage, res: ServerResponse) => void handler(req, res));
    connections.track(server);
    server.keepAliveTimeout = 5_000;
    const port = await listen(server);
    servers.push(server);
    return { port, url: `https://127.0.0.1:${port}`, close: () => closeServer(server) };
  };

  const endpoints: Endpoints = { entra: "", arm: "", metering: "", blob: "", admin: "", managedIdentity: "", graph: "", web: "" };
  const ctx: SandboxContext = {
    state, tokens, obs, tls, endpoints, azurite: undefined, listenHttps, log,
    keyVault: undefined as unknown as KeyVaultHooks,
    serviceBus: undefined as unknown as ServiceBusHooks,
  };

  let azuriteChild: ChildProcess | undefined;
  let identityHeader = "";
  let front: Front | undefined;
  const stopAll = async () => {
    // Job replicas are the sandbox's children: none outlives it.
    await jobRunner(ctx).stop();
    await front?.close();
    await Promise.all(servers.map(closeServer));
    if (azuriteChild && azuriteChild.exitCode === null) {
      const exited = new Promise((r) => azuriteChild!.once("exit", r));
      azuriteChild.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (azuriteChild.exitCode === null) azuriteChild.kill("SIGKILL");
    }
  };

  try {
    const azuriteStart = opts.azurite === false ? undefined : startAzurite(dir, paths.certPath, paths.keyPath, log);
    const keyVault = createKeyVaultService(ctx);
    ctx.keyVault = keyVault.hooks;
    ctx.serviceBus = createServiceBusService(ctx).hooks;
    const armDef = createArmService(ctx);
    const [entra, arm, metering, graph] = await Promise.all([
      listenHttps(createEntraService(ctx)),
      listenHttps(armDef),
      listenHttps(createMeteringService(ctx)),
      listenHttps(createGraphService(ctx)),
    ]);
    endpoints.entra = entra.url;
    endpoints.arm = arm.url;
    endpoints.metering = metering.url;
    endpoints.graph = graph.url;
    await seedMrgResources(ctx, armDef);

    const adminHandler = createServiceHandler(createAdminService(ctx), obs, log, connections.cut);
    const admin = createHttpServer((req, res) => void adminHandler(req, res));
    connections.track(admin);
    endpoints.admin = `http://127.0.0.1:${await listen(admin)}`;
    servers.push(admin);

    const mi = createManagedIdentityService(ctx);
    identityHeader = mi.identityHeader;
    const miHandler = createServiceHandler(mi.service, obs, log, connections.cut);
    const miServer = createHttpServer((req, res) => void miHandler(req, res));
    connections.track(miServer);
    endpoints.managedIdentity = `http://127.0.0.1:${await listen(miServer)}`;
    servers.push(miServer);

    if (azuriteStart) {
      const az = await azuriteStart;
      azuriteChild = az.child;
      endpoints.blob = az.endpoint;
      ctx.azurite = { blobEndpoint: az.endpoint, accountName: AZURITE_ACCOUNT.name, accountKey: AZURITE_ACCOUNT.key };
      endpoints.web = (await listenHttps(createStaticWebsiteService(ctx))).url;
    }
    if (opts.front !== false) front = await startFront(ctx);
  } catch (err) {
    await stopAll();
    throw err;
  }

  const binDir = join(dir, "bin");
  await mkdir(binDir, { recursive: true });
  const azScript = `#!/bin/sh\n# The sandbox's az stand-in: forwards to the sandbox admin API.\n` +
    `METERING_SANDBOX_ADMIN="\${METERING_SANDBOX_ADMIN:-${endpoints.admin}}" exec node '${join(REPO_ROOT, "sandbox", "az", "az.mjs")}' "$@"\n`;
  await writeFile(join(binDir, "az"), azScript);
  await chmod(join(binDir, "az"), 0o755);

  const env: Record<string, string> = {
    AZURE_AUTHORITY_HOST: endpoints.entra,
    METERING_API_BASE_URL: endpoints.metering,
    METERING_DISABLE_INSTANCE_DISCOVERY: "true",
    METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION: "true",
    AZURE_TOKEN_CREDENTIALS: "AzureCliCredential",
    NODE_EXTRA_CA_CERTS: paths.caCertPath,
    DENO_CERT: paths.caCertPath,
    // The ISV's compute has a managed identity (App Service style): the ISV credential falls back
    // to it when az is not there (2-emit-meter from a timer job). IMDS is reachable too, through
    // AZURE_POD_IDENTITY_AUTHORITY_HOST=<endpoints.managedIdentity>, which is left unset here.
    IDENTITY_ENDPOINT: `${endpoints.managedIdentity}/msi/token`,
    IDENTITY_HEADER: identityHeader,
    METERING_SANDBOX_ADMIN: endpoints.admin,
    METERING_SANDBOX_DIR: dir,
    NO_PROXY: prependList("NO_PROXY", LOOPBACK_NO_PROXY),
    no_proxy: prependList("no_proxy", LOOPBACK_NO_PROXY),
    PATH: `${binDir}:${process.env.PATH ?? ""}`,
  };
  // A job replica starts from the sandbox's environment as a container starts in Azure's network:
  // no az stand-in (a container has no az) and no identity of the ISV's compute (the job's own
  // comes with the execution).
  const { IDENTITY_ENDPOINT: _ie, IDENTITY_HEADER: _ih, ...platformEnv } = env;
  jobRunner(ctx).setPlatformEnv({ ...platformEnv, PATH: process.env.PATH ?? "", ...(process.env.HOME ? { HOME: process.env.HOME } : {}) });
  jobRunner(ctx).startScheduler();
  const envFile = join(dir, "env");
  const frontEnvFile = join(dir, "env-front");
  await writeFile(envFile, envFileText(env, binDir));
  const frontEnv = front ? frontEnvOf(front.url, paths.caCertPath) : undefined;
  if (frontEnv) await writeFile(frontEnvFile, frontEnvFileText(frontEnv, envFile));
  else await rm(frontEnvFile, { force: true });
  const world = state.summary();
  const handle: SandboxHandle = {
    dir, endpoints, caCertPath: paths.caCertPath, world, state, tokens, obs, env, front, frontEnv,
    azuritePid: azuriteChild?.pid,
    stop: async () => {
      await stopAll();
      await rm(join(dir, "sandbox.json"), { force: true });
    },
  };
  await writeFile(join(dir, "sandbox.json"), JSON.stringify({
    pid: process.pid,
    azuritePid: azuriteChild?.pid,
    endpoints,
    caCertPath: paths.caCertPath,
    envFile,
    ...(front ? { front: { proxy: front.url, port: front.port, envFile: frontEnvFile } } : {}),
    world,
  }, null, 2) + "\n");
  return handle;
}

export { tlsPaths };

// Run as a process: `main.mts --dir DIR [--world FILE]` (sandbox/cli.mts does this).
if (import.meta.main ?? (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({ options: { dir: { type: "string" }, world: { type: "string" } }, strict: true });
  if (!values.dir) {
    process.stderr.write("usage: main.mts --dir DIR [--world FILE]\n");
    process.exitCode = 2;
  } else {
    const { readTlsMaterial } = await import("./core/ca.mts");
    // The CLI made the CA before starting this process, so this process already trusts it.
    const tls = await readTlsMaterial(values.dir).catch(() => undefined);
    const sb = await startSandbox({ dir: values.dir, tls, seed: await loadWorldSeed(values.world) });
    let stopping = false;
    const shutdown = async () => {
      if (stopping) return;
      stopping = true;
      await sb.stop();
      process.exitCode = 0;
      setTimeout(() => process.exit(0), 100).unref?.();
    };
    process.on("SIGTERM", shutdown);
    process.on("SIGINT", shutdown);
  }
}
