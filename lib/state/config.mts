// config.json: the publisher's setup and one entry per connected customer, in the shape of
// the original bash tool so an existing file carries over as is (unknown keys are kept).
// Validation is pure (configProblems, customerProblems); I/O is loadConfig / updateConfig.
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { randomUUID } from "node:crypto";
import { ConfigInvalidError, ConfigMissingError, CustomerNotConnectedError, describeWriteError, RunLockedError, StateWriteError } from "../core/errors.mts";
import { writeFully } from "../core/durable-write.mts";
import { isGuid, isResourceGroupName, isTenantName } from "../core/validate.mts";
import { findCustomer } from "./customers.mts";

export interface IdpConfig {
  /** Issuer URL: no trailing slash; the same string in the FIC, `iss` and the discovery document. */
  issuer: string;
  /** Key Vault key URL without version. */
  keyUri: string;
  /** Key Vault key URL with version: the key that signs. */
  keyId: string;
  /** The published public JWK; its `kid` goes into every assertion header. */
  keyJson: { kid: string; kty: string; n: string; e: string; [key: string]: unknown };
  /**
   * Every signing key this issuer has had, with its rotation state (see lib/issuer/rotation.mts).
   * Absent in bash-era files: then `keyId`/`keyJson` are the one active key. When present,
   * `keyId`/`keyJson` mirror the active entry so older readers keep working.
   */
  keys?: IdpKey[];
  /** Seconds the new key stays published before it may sign (Entra's JWKS cache; default 24 h). */
  jwksCacheSeconds?: number;
  /** Seconds an old key stays published after it stopped signing (default: longest assertion lifetime + skew). */
  retireAfterSeconds?: number;
  /**
   * Where the issuer documents are served: `blob` (default; a public-read container, the issuer is
   * `<blob endpoint>/<container>`) or `static-website` (the account's `$web` container, served
   * anonymously at the static website endpoint, which is the issuer).
   */
  issuerHost?: IssuerHost;
  /** The blob endpoint the documents are uploaded to (recorded for `static-website`, whose issuer is another host). */
  blobEndpoint?: string;
  /**
   * The bash tool's JWKS path under the issuer (`jwks_uri/keys`) while its legacy kid is still
   * published: kept in step with the JWKS until the migration retires the legacy kid, then deleted.
   */
  legacyJwksPath?: string;
  [key: string]: unknown;
}

/** Where the issuer documents are served from; see IdpConfig.issuerHost. */
export type IssuerHost = "blob" | "static-website";
export const ISSUER_HOSTS: readonly IssuerHost[] = ["blob", "static-website"];

/** Where a signing key is in its life: in the JWKS only, signing (and in the JWKS), or gone from the JWKS. */
export type IdpKeyState = "published" | "active" | "retired";

/** One signing key of the issuer: a Key Vault key version and its published JWK. */
export interface IdpKey {
  /** RFC 7638 thumbprint of the public key: the JWKS `kid` and the assertion header's `kid`. */
  kid: string;
  /** Versioned Key Vault key URL. */
  keyId: string;
  state: IdpKeyState;
  /** When the key entered its current state (ISO 8601). */
  since: string;
  /** When it was first published in the JWKS. */
  publishedAt?: string;
  /** When it started signing. */
  activatedAt?: string;
  /** When it stopped signing (the next key took over); it stays published until retired. */
  deactivatedAt?: string;
  retiredAt?: string;
  /** The public JWK as published (kty, use, alg, kid, n, e). */
  jwk: { kid: string; kty: string; n: string; e: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface PublisherConfig {
  aadTenantId?: string;
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
  optional?: { storageAccountName?: string; containerName?: string; keyVaultName?: string; [key: string]: unknown };
  idp?: IdpConfig;
  [key: string]: unknown;
}

export interface CustomerConfig {
  uamiClientId: string;
  /** The customer's Entra tenant (where the UAMI lives and the token is issued). */
  tenantId: string;
  subject: string;
  audience: string;
  uamiName: string;
  billing: { resourceId: string; resourceUri: string; [key: string]: unknown };
  planName: string;
  [key: string]: unknown;
}

export interface MeteringConfig {
  publisher: PublisherConfig;
  /** customers[subscriptionId][managedResourceGroup] */
  customers: Record<string, Record<string, CustomerConfig>>;
  [key: string]: unknown;
}

/**
 * What an operation needs from config.json:
 * - `any`: only the overall shape (publisher and customers are objects when present);
 * - `defaults`: publisher tenant, subscription, resource group and location (0-add-defaults);
 * - `idp`: the defaults plus publisher.idp (0-isv-setup).
 */
export type ConfigStage = "any" | "defaults" | "idp";

/**
 * The script that writes a key, for the hint of a problem with it: publisher defaults come from
 * 0-add-defaults, publisher.idp and publisher.optional from 0-isv-setup, a customer entry from
 * 1-connect-customer; anything else (the file's own shape) is fixed by hand.
 */
function _repairHint(problem: string): string {
  if (/^publisher\.(idp|optional)\b/.test(problem)) return "run 0-isv-setup";
  if (/^publisher\.(aadTenantId|subscriptionId|resourceGroup|location)\b/.test(problem) || /^publisher: missing/.test(problem)) return "run 0-add-defaults";
  if (/^customers\.[^.:]+\.[^.:]+/.test(problem)) return "run 1-connect-customer --force for that customer";
  return "fix the file or move it away";
}

/** The hints of a list of problems, each script once, in the order the problems name them. */
export function repairHints(problems: string[]): string[] {
  return [...new Set(problems.map(_repairHint))];
}

type Json = Record<string, unknown>;

function _isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function _isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

function _isHttpsUrl(value: unknown): boolean {
  if (typeof value !== "string") return false;
  try {
    return new URL(value).protocol === "https:";
  } catch {
    return false;
  }
}

function _join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** Collects problems as `path: what is wrong`, so one message can name all of them. */
class _Problems {
  list: string[] = [];
  missing(path: string) {
    this.list.push(`${path}: missing`);
  }
  check(obj: Json, key: string, path: string, ok: (v: unknown) => boolean, expected: string) {
    const v = obj[key];
    if (v === undefined || v === null || v === "") this.missing(_join(path, key));
    else if (!ok(v)) this.list.push(`${_join(path, key)}: ${expected}, got ${_short(v)}`);
  }
  object(obj: Json, key: string, path: string): Json | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      this.missing(_join(path, key));
      return undefined;
    }
    if (!_isObject(v)) {
      this.list.push(`${_join(path, key)}: expected an object, got ${_short(v)}`);
      return undefined;
    }
    return v;
  }
}

function _short(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Lists what is missing or invalid in a parsed config.json for a stage. Pure; returns []
 * when the document is fine.
 *
 * @example
 * configProblems({ publisher: {} }, { stage: "defaults" })
 * // ["publisher.aadTenantId: missing", "publisher.subscriptionId: missing", …]
 */
export function configProblems(doc: unknown, options: { stage: ConfigStage }): string[] {
  const p = new _Problems();
  if (!_isObject(doc)) return [`(top level): expected a JSON object, got ${_short(doc)}`];
  const customers = doc.customers;
  if (customers !== undefined && !_isObject(customers)) {
    p.list.push(`customers: expected an object, got ${_short(customers)}`);
  } else if (customers !== undefined) {
    for (const [sub, groups] of Object.entries(customers)) {
      if (!_isObject(groups)) p.list.push(`customers.${sub}: expected an object, got ${_short(groups)}`);
    }
  }
  const publisher = doc.publisher;
  if (options.stage === "any") {
    if (publisher !== undefined && !_isObject(publisher)) p.list.push(`publisher: expected an object, got ${_short(publisher)}`);
    return p.list;
  }
  const pub = p.object(doc, "publisher", "");
  if (!pub) return p.list;
  p.check(pub, "aadTenantId", "publisher", isTenantName, "expected a tenant id (GUID) or a verified domain such as contoso.com");
  p.check(pub, "subscriptionId", "publisher", isGuid, "expected a GUID");
  p.check(pub, "resourceGroup", "publisher", isResourceGroupName, "expected a resource group name");
  p.check(pub, "location", "publisher", _isNonEmptyString, "expected a region name");
  if (options.stage === "defaults") return p.list;

  const idp = p.object(pub, "idp", "publisher");
  if (!idp) return p.list;
  p.check(idp, "issuer", "publisher.idp", (v) => _isHttpsUrl(v) && !String(v).endsWith("/") && String(v).trim() === v,
    "expected an https URL without trailing slash or whitespace");
  p.check(idp, "keyUri", "publisher.idp", _isHttpsUrl, "expected a Key Vault key URL");
  p.check(idp, "keyId", "publisher.idp", _isHttpsUrl, "expected a versioned Key Vault key URL");
  const jwk = p.object(idp, "keyJson", "publisher.idp");
  if (jwk) {
    p.check(jwk, "kid", "publisher.idp.keyJson", _isNonEmptyString, "expected a string");
    p.check(jwk, "kty", "publisher.idp.keyJson", (v) => v === "RSA", 'expected "RSA"');
    p.check(jwk, "n", "publisher.idp.keyJson", _isNonEmptyString, "expected a string");
    p.check(jwk, "e", "publisher.idp.keyJson", _isNonEmptyString, "expected a string");
  }
  for (const name of ["jwksCacheSeconds", "retireAfterSeconds"]) {
    if (idp[name] !== undefined) {
      p.check(idp, name, "publisher.idp", (v) => typeof v === "number" && Number.isInteger(v) && v >= 0, "expected a whole number of seconds >= 0");
    }
  }
  if (idp.issuerHost !== undefined) {
    p.check(idp, "issuerHost", "publisher.idp", (v) => (ISSUER_HOSTS as readonly unknown[]).includes(v), `expected one of ${ISSUER_HOSTS.join(", ")}`);
  }
  if (idp.issuerHost === "static-website") p.check(idp, "blobEndpoint", "publisher.idp", _isHttpsUrl, "expected the storage account's https blob endpoint");
  if (idp.legacyJwksPath !== undefined) {
    p.check(idp, "legacyJwksPath", "publisher.idp", (v) => typeof v === "string" && /^[A-Za-z0-9._~/-]+$/.test(v) && !v.startsWith("/"), "expected a blob path such as jwks_uri/keys");
  }
  if (idp.keys !== undefined) p.list.push(...idpKeysProblems(idp.keys));
  return p.list;
}

const KEY_STATES: readonly string[] = ["published", "active", "retired"];

/** Problems of publisher.idp.keys: the shape of each entry, exactly one active key. Pure. */
export function idpKeysProblems(keys: unknown): string[] {
  const p = new _Problems();
  const path = "publisher.idp.keys";
  if (!Array.isArray(keys)) return [`${path}: expected an array, got ${_short(keys)}`];
  keys.forEach((key, i) => {
    const at = `${path}[${i}]`;
    if (!_isObject(key)) {
      p.list.push(`${at}: expected an object, got ${_short(key)}`);
      return;
    }
    p.check(key, "kid", at, _isNonEmptyString, "expected a string");
    p.check(key, "keyId", at, _isHttpsUrl, "expected a versioned Key Vault key URL");
    p.check(key, "state", at, (v) => typeof v === "string" && KEY_STATES.includes(v), `expected one of ${KEY_STATES.join(", ")}`);
    p.check(key, "since", at, (v) => typeof v === "string" && !Number.isNaN(Date.parse(v)), "expected an ISO 8601 time");
    const jwk = p.object(key, "jwk", at);
    if (jwk) {
      p.check(jwk, "kid", `${at}.jwk`, (v) => v === key.kid, `expected the entry's kid ${_short(key.kid)}`);
      p.check(jwk, "n", `${at}.jwk`, _isNonEmptyString, "expected a string");
      p.check(jwk, "e", `${at}.jwk`, _isNonEmptyString, "expected a string");
    }
  });
  const active = keys.filter((k) => _isObject(k) && k.state === "active").length;
  if (active !== 1) p.list.push(`${path}: expected exactly one key with state "active", found ${active}`);
  return p.list;
}

/**
 * The issuer's keys with their rotation state. A bash-era idp (no `keys`) is one active key:
 * `keyId` and `keyJson`. Pure.
 */
export function idpKeysOf(idp: IdpConfig): IdpKey[] {
  if (Array.isArray(idp.keys)) return idp.keys;
  return [{ kid: idp.keyJson.kid, keyId: idp.keyId, state: "active", since: "1970-01-01T00:00:00.000Z", jwk: idp.keyJson }];
}

/**
 * The key that signs assertions now: its versioned Key Vault id and the kid that goes into
 * the JWT header. Scripts take the signer's key from here, never from idp.keyId directly.
 *
 * @example
 * const signer = await publisher.signer(); // lib/publisher/context.mts signs with signingKeyOf(idp)
 */
export function signingKeyOf(idp: IdpConfig): { keyId: string; kid: string } {
  const active = idpKeysOf(idp).find((k) => k.state === "active");
  if (!active) throw new ConfigInvalidError("Cannot find the signing key: publisher.idp.keys has no active key (run 0-isv-setup)", { path: "config.json", problems: ["publisher.idp.keys: no active key"] });
  return { keyId: active.keyId, kid: active.kid };
}

/** Keys that belong in the JWKS: every key not retired, active first. Pure. */
export function publishedKeysOf(idp: IdpConfig): IdpKey[] {
  const keys = idpKeysOf(idp).filter((k) => k.state !== "retired");
  return [...keys.filter((k) => k.state === "active"), ...keys.filter((k) => k.state !== "active")];
}

/** Lists what is missing or invalid in one customers[sub][mrg] entry. Pure. */
export function customerProblems(customer: unknown, path: string): string[] {
  const p = new _Problems();
  if (!_isObject(customer)) return [`${path}: expected an object, got ${_short(customer)}`];
  // Connected for billing only (1-connect-customer --billing-only): billing ids and plan, no UAMI.
  if (customer.billingOnly !== true) {
    p.check(customer, "uamiClientId", path, isGuid, "expected a GUID");
    p.check(customer, "tenantId", path, isGuid, "expected a GUID");
    p.check(customer, "subject", path, _isNonEmptyString, "expected a string");
    p.check(customer, "audience", path, _isNonEmptyString, "expected a string");
    p.check(customer, "uamiName", path, _isNonEmptyString, "expected a string");
  }
  p.check(customer, "planName", path, _isNonEmptyString, "expected a string");
  const billing = p.object(customer, "billing", path);
  if (billing) {
    p.check(billing, "resourceId", `${path}.billing`, isGuid, "expected a GUID (the app's resourceUsageId)");
    p.check(billing, "resourceUri", `${path}.billing`, (v) => typeof v === "string" && v.startsWith("/subscriptions/"),
      "expected a managed application id /subscriptions/…");
  }
  return p.list;
}

/** A config with nothing in it; what a first run starts from. */
function emptyConfig(): MeteringConfig {
  return { publisher: {}, customers: {} };
}

function _invalid(path: string, problems: string[], cause?: unknown): ConfigInvalidError {
  return new ConfigInvalidError(
    `Cannot use config ${path}: ${problems.join("; ")} (${repairHints(problems).join("; ")})`,
    { path, problems, cause },
  );
}

/** Parses config text and checks it for a stage; throws ConfigInvalidError naming every problem. */
export function parseConfig(text: string, options: { path: string; stage?: ConfigStage }): MeteringConfig {
  const stage = options.stage ?? "any";
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw _invalid(options.path, [`not valid JSON (${(cause as Error).message})`], cause);
  }
  const problems = configProblems(doc, { stage });
  if (problems.length > 0) throw _invalid(options.path, problems);
  const config = doc as MeteringConfig;
  config.publisher ??= {};
  config.customers ??= {};
  return config;
}

export interface LoadConfigOptions {
  path: string;
  /** What the caller needs; see ConfigStage. Default `any`. */
  stage?: ConfigStage;
  /** Return an empty config instead of throwing when the file does not exist. */
  allowMissing?: boolean;
}

/**
 * Reads and checks config.json.
 * Throws ConfigMissingError (no file) or ConfigInvalidError (one message, every problem).
 */
export async function loadConfig(options: LoadConfigOptions): Promise<MeteringConfig> {
  let text: string;
  try {
    text = await readFile(options.path, "utf8");
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") {
      const stage = options.stage ?? "any";
      if (options.allowMissing) {
        const config = emptyConfig();
        const problems = configProblems(config, { stage });
        if (problems.length > 0) throw _invalid(options.path, problems);
        return config;
      }
      throw new ConfigMissingError(
        `Cannot read config ${options.path}: it does not exist (run 0-add-defaults first, or set METERING_DATA_DIR)`,
        { path: options.path, cause },
      );
    }
    throw _invalid(options.path, [`unreadable (${(cause as Error).message})`], cause);
  }
  return parseConfig(text, options);
}

/** The JSON text written for a config: 2-space indent and a final newline, like jq. */
function serializeConfig(config: MeteringConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * Writes config.json atomically: temp file in the same directory, fsync, rename, mode 0600.
 * Skips the write when the file already holds the same data. Returns whether it wrote.
 */
export async function saveConfig(options: { path: string; config: MeteringConfig }): Promise<{ changed: boolean }> {
  const text = serializeConfig(options.config);
  try {
    const current = await readFile(options.path, "utf8");
    if (JSON.stringify(JSON.parse(current)) === JSON.stringify(options.config)) return { changed: false };
  } catch {
    // Missing or unparsable: write.
  }
  await _writeFileAtomic(options.path, text);
  return { changed: true };
}

/** Temp files of a write that a killed run left behind are older than this (a write takes milliseconds). */
const STRAY_TMP_AGE_MS = 60_000;

async function _writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await _removeStrayTemps(path);
    const handle = await open(tmp, "wx", 0o600);
    try {
      await writeFully(handle, text);
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    const errno = (cause as NodeJS.ErrnoException)?.code;
    throw new StateWriteError(`Cannot write ${path}: ${describeWriteError(cause)}; it still holds its previous content`, { path, cause, ...(errno ? { errno } : {}) });
  }
  // Persist the rename itself; not every platform lets a directory be opened, so best effort.
  try {
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // ignored on purpose
  }
}

/** Removes `.config.json.*.tmp` files that runs killed mid-write left beside `path`. */
async function _removeStrayTemps(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".tmp")) continue;
    const full = join(dirname(path), name);
    const s = await stat(full).catch(() => undefined);
    if (s && Date.now() - s.mtimeMs > STRAY_TMP_AGE_MS) await rm(full, { force: true });
  }
}

// config.json has its own lock, with the run lock's rules (a dead holder on this host or an
// untouched lock is taken over), but a short wait: an update takes milliseconds.
const LOCK_WAIT_MS = 10_000;
const LOCK_POLL_MS = 50;

async function _withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const { acquireRunLock } = await import("../core/lock.mts");
  let lock;
  try {
    lock = await acquireRunLock({ dir: dirname(path), name: basename(path), waitMs: LOCK_WAIT_MS, pollMs: LOCK_POLL_MS });
  } catch (error) {
    if (!(error instanceof RunLockedError)) throw error;
    throw new ConfigInvalidError(`Cannot update config ${path}: locked by another run (${error.path}); delete the lock file if no other run is active`, {
      path,
      problems: ["locked"],
      cause: error,
    });
  }
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/**
 * Read-modify-write of config.json under a lock file, so two runs that each add a customer
 * do not lose one another's entry. `update` gets the current config (empty when the file
 * is missing) and returns the new one; nothing is written when it is unchanged.
 */
export async function updateConfig(options: {
  path: string;
  update: (config: MeteringConfig) => MeteringConfig | Promise<MeteringConfig>;
  /** Run under the same lock after the write (or after finding nothing to write), with the file's text: copies follow in order. */
  afterSave?: (text: string) => Promise<void>;
}): Promise<{ config: MeteringConfig; changed: boolean }> {
  return await _withLock(options.path, async () => {
    const current = await loadConfig({ path: options.path, allowMissing: true });
    const config = await options.update(structuredClone(current));
    const { changed } = await saveConfig({ path: options.path, config });
    if (options.afterSave) await options.afterSave(await readFile(options.path, "utf8"));
    return { config, changed };
  });
}

/** Returns a copy of config with publisher fields replaced (other publisher keys kept). */
export function withPublisher(config: MeteringConfig, patch: Partial<PublisherConfig>): MeteringConfig {
  return { ...config, publisher: { ...config.publisher, ...patch } };
}

/** Returns a copy of config with a customer entry set (other customers kept). */
export function withCustomer(
  config: MeteringConfig,
  options: { subscriptionId: string; managedResourceGroup: string; customer: CustomerConfig },
): MeteringConfig {
  const found = findCustomer(config, options);
  const sub = found?.subscriptionId ?? options.subscriptionId;
  const mrg = found?.managedResourceGroup ?? options.managedResourceGroup;
  const customers = { ...config.customers, [sub]: { ...(config.customers[sub] ?? {}), [mrg]: options.customer } };
  return { ...config, customers };
}

/** Returns a copy of config without a customer entry (an emptied subscription goes too). */
export function withoutCustomer(config: MeteringConfig, options: { subscriptionId: string; managedResourceGroup: string }): MeteringConfig {
  const found = findCustomer(config, options);
  if (!found) return config;
  const { [found.managedResourceGroup]: _removed, ...groups } = config.customers[found.subscriptionId];
  const customers = { ...config.customers };
  if (Object.keys(groups).length === 0) delete customers[found.subscriptionId];
  else customers[found.subscriptionId] = groups;
  return { ...config, customers };
}

// The lookup lives with the other customer rules; exported here too for the scripts that
// read config and look a customer up in one import.
export { findCustomer } from "./customers.mts";

/**
 * Returns a connected customer's entry, checked. Throws CustomerNotConnectedError when there
 * is none, ConfigInvalidError when the entry is incomplete.
 */
export function getCustomer(
  config: MeteringConfig,
  options: { subscriptionId: string; managedResourceGroup: string; path: string },
): CustomerConfig {
  const found = findCustomer(config, options);
  if (!found) {
    throw new CustomerNotConnectedError(
      `Cannot find customer ${options.subscriptionId}/${options.managedResourceGroup} in ${options.path}: run 1-connect-customer ${options.subscriptionId} ${options.managedResourceGroup} first`,
    );
  }
  const path = `customers.${found.subscriptionId}.${found.managedResourceGroup}`;
  const problems = customerProblems(found.customer, path);
  if (problems.length > 0) {
    throw new ConfigInvalidError(
      `Cannot use config ${options.path}: ${problems.join("; ")} (run 1-connect-customer ${options.subscriptionId} ${options.managedResourceGroup} --force)`,
      { path: options.path, problems },
    );
  }
  return found.customer as CustomerConfig;
}
