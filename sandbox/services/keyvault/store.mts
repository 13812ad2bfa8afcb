// Key Vault objects shared by the data plane (keyvault/service.mts) and ARM (arm/keyvault.mts): vaults,
// RSA keys with versions, secrets with versions, and the signing of digests. Private keys stay
// in this module: nothing returns them, no route exports them.
import { constants, generateKeyPair, privateEncrypt, publicDecrypt, randomUUID, type KeyObject } from "node:crypto";
import type { ArmResource, SandboxState } from "../../core/state.mts";

/** A Key Vault failure in the data plane's terms; ARM maps it onto its own shape. */
export class KvError extends Error {
  status: number;
  code: string;
  inner?: string;
  constructor(status: number, code: string, message: string, inner?: string) {
    super(message);
    this.name = "KvError";
    this.status = status;
    this.code = code;
    this.inner = inner;
  }
}

export interface ObjectAttributes {
  enabled: boolean;
  /** Epoch seconds, as Key Vault writes them. */
  created: number;
  updated: number;
  nbf?: number;
  exp?: number;
}

export interface KeyVersion {
  version: string;
  kty: string;
  keySize: number;
  keyOps: string[];
  privateKey: KeyObject;
  publicKey: KeyObject;
  n: string;
  e: string;
  attributes: ObjectAttributes;
  tags?: Record<string, string>;
}

export interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  attributes: ObjectAttributes;
  tags?: Record<string, string>;
}

/** Versions in creation order: the last is the current one. */
export interface Versioned<T> {
  name: string;
  versions: T[];
}

export interface VaultData {
  id: string;
  name: string;
  tenantId: string;
  /** "https://127.0.0.1:<port>/" */
  uri: string;
  port: number;
  keys: Map<string, Versioned<KeyVersion>>;
  /** Soft-deleted keys (every version), by lower-cased name, with the deletion time in epoch seconds. */
  deletedKeys: Map<string, Versioned<KeyVersion> & { deletedDate: number }>;
  secrets: Map<string, Versioned<SecretVersion>>;
  /** Soft-deleted secrets (every version), by lower-cased name, with the deletion time in epoch seconds. */
  deletedSecrets: Map<string, Versioned<SecretVersion> & { deletedDate: number }>;
  /** The sandbox state: every change is mirrored there as the ARM child resource (vaults/keys, vaults/secrets). */
  state: SandboxState;
  close(): Promise<void>;
}

const KEY_SIZES = [2048, 3072, 4096];
const KEY_TYPES = ["RSA", "RSA-HSM"];
const KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"];
/** What Key Vault grants an RSA key created without key_ops. */
const DEFAULT_RSA_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"];
const OBJECT_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const VERSION = /^[0-9a-f]{32}$/i;
const MAX_SECRET_CHARS = 25 * 1024;

/** PKCS#1 v1.5 signatures sign DER DigestInfo(hash OID, digest); these are its fixed prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO_PREFIX: Record<string, { prefix: Buffer; digestBytes: number }> = {
  RS256: { prefix: Buffer.from("3031300d060960864801650304020105000420", "hex"), digestBytes: 32 },
  RS384: { prefix: Buffer.from("3041300d060960864801650304020205000430", "hex"), digestBytes: 48 },
  RS512: { prefix: Buffer.from("3051300d060960864801650304020305000440", "hex"), digestBytes: 64 },
};
const SIGN_ALGORITHMS = Object.keys(DIGEST_INFO_PREFIX);

/** Every vault's objects, by lower-cased vault resource id. */
export function vaultStore(state: SandboxState): Map<string, VaultData> {
  return state.store("keyvault.vaults", () => new Map<string, VaultData>());
}

const newVersion = () => randomUUID().replace(/-/g, "");

function checkName(name: string): void {
  if (!OBJECT_NAME.test(name)) throw new KvError(400, "BadParameter", `The request URI contains an invalid name: ${name}`);
}

function attributesFrom(given: unknown, nowS: number, prev?: ObjectAttributes): ObjectAttributes {
  const g = (given ?? {}) as { enabled?: unknown; nbf?: unknown; exp?: unknown };
  const num = (v: unknown, field: string) => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new KvError(400, "BadParameter", `Property 'attributes.${field}' must be a number of seconds since the epoch.`);
    return Math.floor(v);
  };
  if (g.enabled !== undefined && typeof g.enabled !== "boolean") throw new KvError(400, "BadParameter", "Property 'attributes.enabled' must be a boolean.");
  return {
    enabled: (g.enabled as boolean | undefined) ?? prev?.enabled ?? true,
    created: prev?.created ?? nowS,
    updated: nowS,
    nbf: num(g.nbf, "nbf") ?? prev?.nbf,
    exp: num(g.exp, "exp") ?? prev?.exp,
  };
}

function checkTags(tags: unknown): Record<string, string> | undefined {
  if (tags === undefined || tags === null) return undefined;
  if (typeof tags !== "object" || Array.isArray(tags) || !Object.values(tags).every((v) => typeof v === "string")) {
    throw new KvError(400, "BadParameter", "Property 'tags' must be an object of strings.");
  }
  return tags as Record<string, string>;
}

function checkKeyOps(ops: unknown): string[] | undefined {
  if (ops === undefined || ops === null) return undefined;
  if (!Array.isArray(ops)) throw new KvError(400, "BadParameter", "Property 'key_ops' must be an array.");
  for (const op of ops) {
    if (typeof op !== "string" || !KEY_OPS.includes(op)) throw new KvError(400, "BadParameter", `Invalid key operation: ${String(op)}. Valid operations are ${KEY_OPS.join(", ")}.`);
  }
  return [...ops] as string[];
}

// ---------------------------------------------------------------- keys

export interface CreateKeyParams {
  kty?: unknown;
  keySize?: unknown;
  keyOps?: unknown;
  attributes?: unknown;
  tags?: unknown;
}

/** Creates a new version of key `name` (a new key when there is none). */
export async function createKeyVersion(vault: VaultData, name: string, p: CreateKeyParams, nowS: number): Promise<KeyVersion> {
  checkName(name);
  if (vault.deletedKeys.has(name.toLowerCase())) {
    throw new KvError(409, "Conflict", `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.`, "ObjectIsDeletedButRecoverable");
  }
  if (typeof p.kty !== "string" || !p.kty) throw new KvError(400, "BadParameter", "Property 'kty' is required.");
  if (!KEY_TYPES.includes(p.kty)) {
    throw new KvError(400, "BadParameter", `Key type '${p.kty}' is not supported by this sandbox; use ${KEY_TYPES.join(" or ")}.`);
  }
  const keySize = p.keySize ?? 2048;
  if (typeof keySize !== "number" || !KEY_SIZES.includes(keySize)) {
    throw new KvError(400, "BadParameter", `The key size '${String(keySize)}' is not supported for RSA keys; use ${KEY_SIZES.join(", ")}.`);
  }
  const keyOps = checkKeyOps(p.keyOps) ?? DEFAULT_RSA_OPS;
  const attributes = attributesFrom(p.attributes, nowS);
  const tags = checkTags(p.tags);
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((res, rej) =>
    generateKeyPair("rsa", { modulusLength: keySize, publicExponent: 0x10001 }, (err, pub, priv) => err ? rej(err) : res({ publicKey: pub, privateKey: priv }))
  );
  const jwk = publicKey.export({ format: "jwk" }) as { n: string; e: string };
  const kv: KeyVersion = { version: newVersion(), kty: p.kty, keySize, keyOps, privateKey, publicKey, n: jwk.n, e: jwk.e, attributes, tags };
  const lname = name.toLowerCase();
  const entry = vault.keys.get(lname) ?? { name, versions: [] };
  entry.versions.push(kv);
  vault.keys.set(lname, entry);
  mirrorToArm(vault, "keys", entry.name);
  return kv;
}

/**
 * Deletes key `name` with all its versions (Key Vault has no per-version delete). With soft
 * delete the key is kept as deleted until purged; recover and purge are not emulated.
 */
export function deleteKey(vault: VaultData, name: string, nowS: number): Versioned<KeyVersion> & { deletedDate: number } {
  const { name: stored } = findKey(vault, name);
  const lname = stored.toLowerCase();
  const entry = vault.keys.get(lname)!;
  vault.keys.delete(lname);
  const deleted = { ...entry, deletedDate: nowS };
  vault.deletedKeys.set(lname, deleted);
  vault.state.deleteResource(`${vault.id}/keys/${stored}`);
  return deleted;
}

/** A soft-deleted key, or 404 KeyNotFound. */
export function findDeletedKey(vault: VaultData, name: string): Versioned<KeyVersion> & { deletedDate: number } {
  checkName(name);
  const entry = vault.deletedKeys.get(name.toLowerCase());
  if (!entry) throw new KvError(404, "KeyNotFound", `Deleted Key not found: ${name}`);
  return entry;
}

/** Key `name` at `version` (latest when empty), or 404 KeyNotFound. */
export function findKey(vault: VaultData, name: string, version?: string): { name: string; kv: KeyVersion } {
  checkName(name);
  const entry = vault.keys.get(name.toLowerCase());
  const id = version ? `${name}/${version}` : name;
  const kv = !entry ? undefined : version ? entry.versions.find((v) => v.version === version.toLowerCase()) : entry.versions.at(-1);
  if (!entry || !kv || (version && !VERSION.test(version))) {
    throw new KvError(404, "KeyNotFound",
      `A key with (name/id) ${id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
  }
  return { name: entry.name, kv };
}

export function updateKeyVersion(vault: VaultData, name: string, kv: KeyVersion, p: { keyOps?: unknown; attributes?: unknown; tags?: unknown }, nowS: number): void {
  const ops = checkKeyOps(p.keyOps);
  const tags = checkTags(p.tags);
  kv.attributes = attributesFrom(p.attributes, nowS, kv.attributes);
  if (ops) kv.keyOps = ops;
  if (tags) kv.tags = tags;
  mirrorToArm(vault, "keys", name);
}

/** 403 unless the key version may be used now for `op` (enabled, within nbf/exp, op in key_ops). */
export function checkUsable(kv: KeyVersion, op: string, nowS: number): void {
  if (!kv.attributes.enabled) throw new KvError(403, "Forbidden", `Operation ${op} is not allowed on a disabled key.`, "KeyDisabled");
  if (op === "get") return;
  if (kv.attributes.nbf !== undefined && nowS < kv.attributes.nbf) throw new KvError(403, "Forbidden", `Operation ${op} is not allowed on a key that is not yet valid.`, "KeyNotYetValid");
  if (kv.attributes.exp !== undefined && nowS >= kv.attributes.exp) throw new KvError(403, "Forbidden", `Operation ${op} is not allowed on an expired key.`, "KeyExpired");
  if (!kv.keyOps.includes(op)) throw new KvError(403, "Forbidden", `Operation ${op} is not allowed by the key's key_ops (${kv.keyOps.join(", ")}).`, "KeyOperationForbidden");
}

/** Decodes base64url or standard base64, padded or not (the original tool sent padded standard base64, docs/azure-behaviour.md §4.1). */
export function decodeBase64Any(value: unknown, field: string): Buffer {
  if (typeof value !== "string" || !value) throw new KvError(400, "BadParameter", `Property '${field}' is required.`);
  const s = value.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) throw new KvError(400, "BadParameter", `Property '${field}' is not valid base64url.`);
  return Buffer.from(s, "base64");
}

function digestInfo(alg: unknown, digest: Buffer): Buffer {
  if (typeof alg !== "string" || !alg) throw new KvError(400, "BadParameter", "Property 'alg' is required.");
  const spec = DIGEST_INFO_PREFIX[alg];
  if (!spec) throw new KvError(400, "BadParameter", `The algorithm '${alg}' is not supported by this sandbox for RSA keys; use ${SIGN_ALGORITHMS.join(", ")}.`);
  if (digest.length !== spec.digestBytes) {
    throw new KvError(400, "BadParameter", `Invalid digest length: ${digest.length} bytes. Algorithm ${alg} expects a digest of ${spec.digestBytes} bytes.`);
  }
  return Buffer.concat([spec.prefix, digest]);
}

/**
 * RSASSA-PKCS1-v1_5 over an already computed digest: the RSA private operation with block type 1
 * padding (what privateEncrypt with RSA_PKCS1_PADDING does) applied to DigestInfo(digest).
 * The result equals what a JWS RS256 signature over the original data is.
 */
export function signDigest(kv: KeyVersion, alg: unknown, digest: Buffer): Buffer {
  const input = digestInfo(alg, digest);
  return privateEncrypt({ key: kv.privateKey, padding: constants.RSA_PKCS1_PADDING }, input);
}

export function verifyDigest(kv: KeyVersion, alg: unknown, digest: Buffer, signature: Buffer): boolean {
  const expected = digestInfo(alg, digest);
  try {
    return publicDecrypt({ key: kv.publicKey, padding: constants.RSA_PKCS1_PADDING }, signature).equals(expected);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- secrets

export function setSecretVersion(vault: VaultData, name: string, p: { value?: unknown; contentType?: unknown; attributes?: unknown; tags?: unknown }, nowS: number): SecretVersion {
  checkName(name);
  if (typeof p.value !== "string") throw new KvError(400, "BadParameter", "Property 'value' is required and must be a string.");
  if (p.value.length > MAX_SECRET_CHARS) throw new KvError(400, "BadParameter", `Secret values are limited to ${MAX_SECRET_CHARS} characters.`);
  if (p.contentType !== undefined && p.contentType !== null && typeof p.contentType !== "string") throw new KvError(400, "BadParameter", "Property 'contentType' must be a string.");
  const sv: SecretVersion = {
    version: newVersion(),
    value: p.value,
    contentType: (p.contentType as string | undefined) ?? undefined,
    attributes: attributesFrom(p.attributes, nowS),
    tags: checkTags(p.tags),
  };
  const lname = name.toLowerCase();
  if (vault.deletedSecrets?.has(lname)) {
    throw new KvError(409, "Conflict", `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`, "ObjectIsDeletedButRecoverable");
  }
  const entry = vault.secrets.get(lname) ?? { name, versions: [] };
  entry.versions.push(sv);
  vault.secrets.set(lname, entry);
  mirrorToArm(vault, "secrets", entry.name);
  return sv;
}

/** Soft-deletes a secret (every version); recover and purge are not emulated. */
export function deleteSecret(vault: VaultData, name: string, nowS: number): Versioned<SecretVersion> & { deletedDate: number } {
  const { name: stored } = findSecret(vault, name);
  const lname = stored.toLowerCase();
  const entry = vault.secrets.get(lname)!;
  vault.secrets.delete(lname);
  const deleted = { ...entry, deletedDate: nowS };
  vault.deletedSecrets.set(lname, deleted);
  vault.state.deleteResource(`${vault.id}/secrets/${stored}`);
  return deleted;
}

export function findSecret(vault: VaultData, name: string, version?: string): { name: string; sv: SecretVersion } {
  checkName(name);
  const entry = vault.secrets.get(name.toLowerCase());
  const sv = !entry ? undefined : version ? entry.versions.find((v) => v.version === version.toLowerCase()) : entry.versions.at(-1);
  if (!entry || !sv) {
    throw new KvError(404, "SecretNotFound",
      `A secret with (name/id) ${version ? `${name}/${version}` : name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
  }
  return { name: entry.name, sv };
}

// ---------------------------------------------------------------- wire shapes

export interface Recovery {
  recoveryLevel: string;
  recoverableDays?: number;
}

/** Key Vault's recovery level for a vault's ARM properties. */
export function recoveryOf(vaultProps: Record<string, unknown> | undefined): Recovery {
  if (vaultProps?.enableSoftDelete === false) return { recoveryLevel: "Purgeable" };
  const days = typeof vaultProps?.softDeleteRetentionInDays === "number" ? vaultProps.softDeleteRetentionInDays : 90;
  return { recoveryLevel: vaultProps?.enablePurgeProtection === true ? "Recoverable" : "Recoverable+Purgeable", recoverableDays: days };
}

const attrsWire = (a: ObjectAttributes, r: Recovery) => ({
  enabled: a.enabled,
  ...(a.nbf !== undefined ? { nbf: a.nbf } : {}),
  ...(a.exp !== undefined ? { exp: a.exp } : {}),
  created: a.created,
  updated: a.updated,
  recoveryLevel: r.recoveryLevel,
  ...(r.recoverableDays !== undefined ? { recoverableDays: r.recoverableDays } : {}),
});

export const keyId = (vault: VaultData, name: string, version?: string) => `${vault.uri}keys/${name}${version ? `/${version}` : ""}`;
const secretId = (vault: VaultData, name: string, version?: string) => `${vault.uri}secrets/${name}${version ? `/${version}` : ""}`;

/** The data plane's KeyBundle (public half only). */
export function keyBundle(vault: VaultData, name: string, kv: KeyVersion, r: Recovery): Record<string, unknown> {
  return {
    key: { kid: keyId(vault, name, kv.version), kty: kv.kty, key_ops: kv.keyOps, n: kv.n, e: kv.e },
    attributes: { ...attrsWire(kv.attributes, r), exportable: false },
    ...(kv.tags ? { tags: kv.tags } : {}),
  };
}

/** The data plane's DeletedKeyBundle: the latest version's public half plus the deletion facts. */
export function deletedKeyBundle(vault: VaultData, entry: Versioned<KeyVersion> & { deletedDate: number }, r: Recovery): Record<string, unknown> {
  const latest = entry.versions.at(-1)!;
  return {
    ...keyBundle(vault, entry.name, latest, r),
    recoveryId: `${vault.uri}deletedkeys/${entry.name}`,
    deletedDate: entry.deletedDate,
    scheduledPurgeDate: entry.deletedDate + (r.recoverableDays ?? 90) * 86400,
  };
}

/** A KeyItem of a list. */
export function keyItem(vault: VaultData, name: string, kv: KeyVersion, r: Recovery, versioned: boolean): Record<string, unknown> {
  return { kid: keyId(vault, name, versioned ? kv.version : undefined), attributes: { ...attrsWire(kv.attributes, r), exportable: false }, ...(kv.tags ? { tags: kv.tags } : {}) };
}

export function secretBundle(vault: VaultData, name: string, sv: SecretVersion, r: Recovery, withValue: boolean): Record<string, unknown> {
  return {
    ...(withValue ? { value: sv.value } : {}),
    ...(sv.contentType !== undefined ? { contentType: sv.contentType } : {}),
    id: secretId(vault, name, sv.version),
    attributes: attrsWire(sv.attributes, r),
    ...(sv.tags ? { tags: sv.tags } : {}),
  };
}

/** DeletedSecretBundle: the latest version's bundle without its value, plus the recovery fields. */
export function deletedSecretBundle(vault: VaultData, entry: Versioned<SecretVersion> & { deletedDate: number }, r: Recovery): Record<string, unknown> {
  return {
    ...secretBundle(vault, entry.name, entry.versions.at(-1)!, r, false),
    recoveryId: `${vault.uri}deletedsecrets/${entry.name}`,
    deletedDate: entry.deletedDate,
    scheduledPurgeDate: entry.deletedDate + (r.recoverableDays ?? 90) * 86400,
  };
}

export function secretItem(vault: VaultData, name: string, sv: SecretVersion, r: Recovery, versioned: boolean): Record<string, unknown> {
  return {
    id: secretId(vault, name, versioned ? sv.version : undefined),
    attributes: attrsWire(sv.attributes, r),
    ...(sv.contentType !== undefined ? { contentType: sv.contentType } : {}),
    ...(sv.tags ? { tags: sv.tags } : {}),
  };
}

// ---------------------------------------------------------------- the ARM view

/** ARM's view of a key at one version (the current one unless given): public facts only. */
export function keyArmView(vaultRes: ArmResource, vault: VaultData, name: string, kv: KeyVersion): Record<string, unknown> {
  const r = recoveryOf(vaultRes.properties);
  return {
    id: `${vaultRes.id}/keys/${name}`,
    name,
    type: "Microsoft.KeyVault/vaults/keys",
    location: vaultRes.location,
    tags: kv.tags ?? {},
    properties: {
      attributes: {
        enabled: kv.attributes.enabled,
        ...(kv.attributes.nbf !== undefined ? { nbf: kv.attributes.nbf } : {}),
        ...(kv.attributes.exp !== undefined ? { exp: kv.attributes.exp } : {}),
        created: kv.attributes.created,
        updated: kv.attributes.updated,
        recoveryLevel: r.recoveryLevel,
        exportable: false,
      },
      kty: kv.kty,
      keyOps: kv.keyOps,
      keySize: kv.keySize,
      keyUri: keyId(vault, name),
      keyUriWithVersion: keyId(vault, name, kv.version),
    },
  };
}

/** ARM's view of a secret: never its value. */
export function secretArmView(vaultRes: ArmResource, vault: VaultData, name: string, sv: SecretVersion): Record<string, unknown> {
  return {
    id: `${vaultRes.id}/secrets/${name}`,
    name,
    type: "Microsoft.KeyVault/vaults/secrets",
    location: vaultRes.location,
    tags: sv.tags ?? {},
    properties: {
      ...(sv.contentType !== undefined ? { contentType: sv.contentType } : {}),
      attributes: { enabled: sv.attributes.enabled, created: sv.attributes.created, updated: sv.attributes.updated },
      secretUri: secretId(vault, name),
      secretUriWithVersion: secretId(vault, name, sv.version),
    },
  };
}

/** Keeps the ARM state's vaults/keys and vaults/secrets resources in step with the data plane. */
function mirrorToArm(vault: VaultData, kind: "keys" | "secrets", name: string): void {
  const vaultRes = vault.state.getResource(vault.id);
  if (!vaultRes) return;
  const entry = kind === "keys" ? vault.keys.get(name.toLowerCase()) : vault.secrets.get(name.toLowerCase());
  const latest = entry?.versions.at(-1);
  if (!entry || !latest) return;
  const view = kind === "keys"
    ? keyArmView(vaultRes, vault, entry.name, latest as KeyVersion)
    : secretArmView(vaultRes, vault, entry.name, latest as SecretVersion);
  const existing = vault.state.getResource(String(view.id));
  vault.state.putResource({
    ...view,
    id: String(view.id),
    name: entry.name,
    type: String(view.type),
    properties: view.properties as Record<string, unknown>,
    tenantId: vaultRes.tenantId,
    subscriptionId: vaultRes.subscriptionId,
    resourceGroup: vaultRes.resourceGroup,
    createdAtMs: existing?.createdAtMs ?? latest.attributes.created * 1000,
  });
}
